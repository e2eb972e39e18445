#!/usr/bin/env python3
"""What the cluster-2 sidecar thinks of httpbin, from its admin /explain, in a few lines (stdlib only).

    explain.py ADMIN [--wait-load CLUSTER=PERCENT] [--timeout S]

Prints the policy, each tier with its clusters (state, endpoints, ejections) and the share of the
traffic it takes now, the next pick and the last failover event. --wait-load first waits (at most
--timeout seconds) until CLUSTER's tier takes PERCENT of the traffic; exit 1 if it never does.
"""
import argparse
import json
import sys
import time
import urllib.request

QUERY = "/explain?listener=outbound&host=httpbin.httpbin:8080&path=/"


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def fetch(admin):
    with NO_PROXY.open(f"http://{admin}{QUERY}", timeout=2) as r:
        return json.load(r)


def short(key):
    return key.rsplit("/", 1)[-1]


def tier_load(e, cluster):
    """The load percent of the tier holding cluster, None when absent."""
    for tier in (e.get("service") or {}).get("tiers", []):
        for c in tier.get("clusters", []):
            if short(c["key"]) == cluster:
                return tier["load_percent"]
    return None


def show(e):
    svc = e.get("service") or {}
    print(f"policy {svc.get('policy')}; retries so far {svc.get('retries')}, ejections {svc.get('ejections')}")
    for tier in svc.get("tiers", []):
        parts = []
        for c in tier.get("clusters", []):
            eps = c.get("endpoints", [])
            ejected = sum(1 for ep in eps if ep.get("ejected"))
            slow = min((ep.get("slow_start", 1.0) for ep in eps), default=1.0)
            extra = f", {ejected} ejected" if ejected else ""
            extra += f", slow start {slow:.0%}" if slow < 1 else ""
            parts.append(f"{short(c['key'])} {c.get('state')} ({len(eps)} endpoint(s){extra})")
        who = "; ".join(parts) or "no endpoints"
        label = "local" if tier["tier"] == 0 and svc.get("policy") == "FailOver" else f"tier {tier['tier']}"
        print(f"  {label}: {who}: takes {tier['load_percent']:.0f}% of the traffic")
    nxt = e.get("next") or {}
    if nxt.get("endpoint"):
        print(f"next request -> {short(nxt.get('cluster', ''))} {nxt['endpoint']}{nxt.get('upstream_target', '')}")
    ev = e.get("last_failover_event")
    if ev:
        print(f"last failover event ({ev.get('seconds_ago')} s ago): {ev.get('event')}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("admin")
    p.add_argument("--wait-load")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    e = fetch(args.admin)
    if args.wait_load:
        cluster, percent = args.wait_load.split("=")
        deadline = time.monotonic() + args.timeout
        while tier_load(e, cluster) is None or abs(tier_load(e, cluster) - float(percent)) > 0.01:
            if time.monotonic() > deadline:
                show(e)
                print(f"{cluster}'s tier does not take {percent}% after {args.timeout:.0f} s")
                return 1
            time.sleep(0.1)
            e = fetch(args.admin)
    show(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
