"""What an auto-reclaim run showed: claims for lab 04, computed from its recordings (pure).

Runs are compared at EQUAL TIME after each one's action (its first drop_caches or reclaim after the
idle mark): free page reporting hands memory over in passes seconds apart, so a run that ends 2 s
after its drop and one that ends 20 s after its first step are not comparable at their ends.
"""
from __future__ import annotations

import math
from typing import Mapping

from .. import analysis
from ..claims import THRESHOLDS, Claim, claim, share_verdict
from ...recording.recording import Recording

ACTIONS = ("drop_caches", "reclaim")


def _label(rec: Recording) -> str:
    p = rec.meta.get("parameters", {})
    return f"{p.get('policy', '?')} · {p.get('variant', '?')}"


def idle_mark_s(rec: Recording) -> float:
    """The run's idle mark (the page-cache workload is done; the daemon starts), 0 where absent."""
    idle = rec.event_times("idle")
    return float(idle[0]) if idle else 0.0


def first_action_s(rec: Recording) -> float | None:
    """When the run's first drop_caches or reclaim came, at or after its idle mark (None: it made none)."""
    idle = rec.event_times("idle")
    t_idle = idle[0] if idle else 0.0
    times = sorted(t for kind in ACTIONS for t in rec.event_times(kind) if t >= t_idle)
    return times[0] if times else None


def _end_s(rec: Recording) -> float:
    return float(rec.samples["t_s"].iloc[-1])


def common_window_s(recs: Mapping[str, Recording]) -> float | None:
    """The longest time after the action that every run (that acted) covers, capped at
    THRESHOLDS["auto_reclaim_compare_s"]."""
    spans = [_end_s(r) - t for r in recs.values() if (t := first_action_s(r)) is not None]
    if not spans:
        return None
    return max(0.0, min(min(spans), THRESHOLDS["auto_reclaim_compare_s"]))


CACHE_COLUMNS = ("cached_kib", "buffers_kib", "slab_reclaimable_kib")   # what drop_caches and reclaim free
# An action's effect is read across it: from this long before (a drop's event is marked once the write is done)
# to this long after (the next sample). Both fit between two polls at the fastest compression the kit uses.
_BEFORE_S, _AFTER_S = 0.5, 0.3


def action_times(rec: Recording, t0: float = -math.inf, t1: float = math.inf) -> list[float]:
    """The run's drop_caches and reclaim writes at or after its idle mark, within [t0, t1]."""
    idle = rec.event_times("idle")
    t_idle = idle[0] if idle else 0.0
    return sorted(t for kind in ACTIONS for t in rec.event_times(kind) if max(t_idle, t0) <= t <= t1)


def fall_across_actions(rec: Recording, columns: tuple[str, ...], times: list[float]) -> float | None:
    """How much the sum of `columns` fell across each action (KiB or the columns' unit), added up: what the
    actions themselves freed, not what the run's end shows (the workload's file is deleted after the watch).
    None where none of the columns was recorded."""
    have = [c for c in columns if c in rec.samples.columns and rec.samples[c].notna().any()]
    if not have:
        return None
    # the workload's file is deleted just before the "tail" mark: a reading after that is not the action's
    tail = rec.event_times("tail")
    # A run that records how long its longest action took (the kit's VM: a drop of 1 GiB under TCG takes
    # over a second, and its event is marked at the end) reads from before that start; a slower sampler's
    # next sample after the action is up to one sample period away.
    res, hz = rec.meta.get("results") or {}, rec.meta.get("sample_hz")
    before_s = _BEFORE_S + float(res.get("action_longest_s") or 0.0)
    after_s = max(_AFTER_S, 1.0 / hz + 0.1) if isinstance(hz, (int, float)) and hz > 0 else _AFTER_S
    # (the kit's VM run deletes no file: its cache stays until the run ends, so no clamp at the tail there)
    last_s = tail[0] - after_s if tail and rec.meta.get("guest_kind") != "kit-vm" else math.inf
    return sum(max(sum(analysis.change(rec, c, min(t + after_s, max(last_s, t)), t - before_s) for c in have), 0.0)
               for t in times)


_HOST = {
    "nearly_all": "**{label}**: within **{dt:.0f} s** after its {action}, **{host}** reached the host, {all_words} "
                  "the **{freed}** of cache its actions freed ({share:.0%}).",
    "most": "**{label}**: within **{dt:.0f} s** after its {action}, **{host}** reached the host, most of the "
            "**{freed}** of cache its actions freed ({share:.0%}).",
    "some": "**{label}**: within **{dt:.0f} s** after its {action}, only **{host}** of the **{freed}** freed "
            "reached the host ({share:.0%}); whether reporting was still under way or the freed memory lay in "
            "blocks below the reporting order (order {order}) is not measured here.",
    "little": "**{label}**: within **{dt:.0f} s** after its {action}, **{host}** reached the host, little of the "
              "**{freed}** freed ({share:.0%}); whether the freed pages lay in blocks below the reporting order "
              "(order {order}) or reporting had not yet run is not measured here.",
    "more_than_freed": "**{label}**: within **{dt:.0f} s** after its {action}, **{host}** reached the host, more than "
                       "the **{freed}** of cache its actions freed ({share:.0%}): the rest was memory freed elsewhere "
                       "in the guest in that window{busy}, which {counter} too.",
    "cut_short": "**{label}**: the runs can be compared only **{dt:.1f} s** after their actions (the shortest "
                 "recording ends then). Free page reporting waits about 2 s after a free and then works in passes "
                 "about 2 s apart, so the {host} that reached the host from this run by then is not a final figure: "
                 "record it again with a longer `tail_s`.",
    "nothing_freed": "**{label}**: its actions freed next to nothing ({freed} of cache), so there was nothing new "
                     "for the host from them; {host} reached it in the {dt:.0f} s after.",
    "no_action": "**{label}**: made no drop or reclaim in this run, so there is no \"after the action\" to compare.",
    "not_measurable": "**{label}**: this recording has no host-side view, so what reached the host is not known.",
}


def host_after_action(recs: Mapping[str, Recording], window_s: float | None = None) -> list[Claim]:
    """Per run: memory reported to the host within the same `window_s` after its action, judged
    against what the run's own actions freed in that window (the guest's cache fall across each action; MemFree's
    rise is no measure on a busy guest, where others allocate and free meanwhile)."""
    dt = common_window_s(recs) if window_s is None else window_s
    out = []
    for name, rec in recs.items():
        label, t = name or _label(rec), first_action_s(rec)
        key = f"auto_reclaim.host_after_action.{label}"
        order = analysis.reporting_order(rec)
        order = "?" if order is None else order
        if t is None or dt is None:
            out.append(claim(key, "no_action", _HOST, label=label))
            continue
        kinds = [k for k in ACTIONS if t in rec.event_times(k)]
        action = "`drop_caches`" if kinds and kinds[0] == "drop_caches" else "first reclaim step"
        freed_kib = fall_across_actions(rec, CACHE_COLUMNS, action_times(rec, t, t + dt)) or 0.0
        busy = (rec.meta.get("results") or {}).get("guest_busy_share_baseline")
        counter = "the guest-wide `reported_kib` counts"
        if "host_reported_kib" in rec.samples.columns and rec.samples["host_reported_kib"].notna().any():
            host_kib = analysis.change(rec, "host_reported_kib", t - 0.5, t + dt)
        elif "host_vm_rss_kib" in rec.samples.columns and rec.samples["host_vm_rss_kib"].notna().any():
            # the kit's VM: what the host got back is how far QEMU's resident memory fell
            host_kib = -analysis.change(rec, "host_vm_rss_kib", t - 0.5, t + dt)
            counter = "QEMU's resident memory (the whole VM's) shows"
        else:
            host_kib = math.nan
        ev = dict(label=label, dt=dt, action=action, order=order, t_action_s=round(t, 2), counter=counter,
                  host=analysis.gib(host_kib) if host_kib == host_kib else "—",
                  freed=analysis.gib(max(freed_kib, 0)), host_kib=host_kib, freed_kib=freed_kib,
                  mem_free_rise_kib=analysis.change(rec, "mem_free_kib", t - _BEFORE_S, t + dt),
                  busy=(f" (other programs kept its CPU {busy:.0%} busy in the baseline)"
                        if isinstance(busy, (int, float)) and busy >= THRESHOLDS["auto_reclaim_busy_cpu_share"] else ""))
        if host_kib != host_kib:
            verdict, share = "not_measurable", None
        elif dt < THRESHOLDS["auto_reclaim_min_window_s"]:
            verdict, share = "cut_short", None
        elif freed_kib < THRESHOLDS["auto_reclaim_min_freed_kib"]:
            verdict, share = "nothing_freed", None
        else:
            share = host_kib / freed_kib
            verdict = ("more_than_freed" if share >= THRESHOLDS["auto_reclaim_more_than_freed_share"]
                       else share_verdict(share))
        # at or just above 100 % (under the more-than-freed share): "about as much as", never "nearly all of" 105 %
        all_words = "about as much as" if share is not None and share >= 1.0 else "nearly all of"
        out.append(claim(key, verdict, _HOST, value=host_kib if host_kib == host_kib else None, unit="KiB",
                         share=share if share is not None else 0.0, all_words=all_words, **ev))
    return out


_METHOD = {
    "memory_reclaim": "**{label}**: its {n} reclaim request(s) went to cgroup v2 `memory.reclaim`, as WSL's do "
                      "(WSL writes the root cgroup's; this run wrote {where}){plain}.",
    "v1_squeeze": "**{label}**: this guest has no `memory.reclaim` (cgroup v1): its {n} reclaim request(s) went to "
                  "the stand-in described above, a `memory.limit_in_bytes` squeeze of the experiment's own cgroup.",
    "no_request": "**{label}**: made no reclaim request ({drop}), so no reclaim method was used.",
}


def method(rec: Recording, label: str | None = None) -> Claim:
    """How the run's reclaim requests were carried out, or that it made none."""
    label = label or _label(rec)
    res = rec.meta.get("results", {})
    n = len(rec.event_times("reclaim"))
    drops = list(rec.events.detail[rec.events.kind == "drop_caches"]) if len(rec.events) else []
    drop = f"it dropped caches: `drop_caches={drops[0]}`" if drops else "nor any `drop_caches`"
    m = res.get("method") if n else None
    # "memory.reclaim" (a local cgroup v2 guest: the experiment's own cgroup) or, in the kit's VM,
    # "memory.reclaim (cgroup2 root of the kit's VM, real write...)": WSL's own target
    real = isinstance(m, str) and m.startswith("memory.reclaim")
    verdict = "no_request" if not n else ("memory_reclaim" if real else "v1_squeeze")
    root = real and "cgroup2 root" in m
    plain = (", as a plain amount: the guest's kernel refused WSL's `swappiness=0` key, and without swap the "
             "kernel can take only cache and slab anyway" if root and res.get("swappiness_refused") else "")
    return claim(f"auto_reclaim.method.{label}", verdict, _METHOD, label=label, n=n, method=m,
                 where="the root cgroup's, in the kit's VM" if root else "a cgroup of its own", drop=drop,
                 plain=plain)


_IDLE = {
    "gate_off": "**How idle was decided.** Other programs kept this guest's busy CPU at **{busy}** in the "
                "baseline, far above WSL's 0.5 % idle threshold, so WSL's test could never pass here: these runs "
                "used `idle_share={share:g}` (the CPU gate off). The idle windows' length is WSL's, counted "
                "from the workload's end, time-compressed ×{scale:g}.",
    "raised": "**How idle was decided.** These runs counted the guest as idle at busy CPU up to **{share:.1%}** "
              "(WSL: 0.5 %), time-compressed ×{scale:g}; busy CPU in the baseline was {busy}.",
    "wsl": "**How idle was decided.** WSL's own threshold, 0.5 % busy CPU, time-compressed ×{scale:g}.",
    "wsl_no_sampler": "**How idle was decided.** WSL's own threshold, 0.5 % busy CPU, time-compressed ×{scale:g}, "
                      "leaving out the kit's sampler thread in the guest (it streams the samples, which WSL's guest "
                      "does not run); the rest of the guest, the policy's own reads included, counted.",
}


def idle_rule(rec: Recording) -> Claim:
    """What idle threshold and time compression the run used, and why (from its meta)."""
    p, res = rec.meta.get("parameters", {}), rec.meta.get("results", {})
    share = float(res.get("idle_share") or p.get("idle_share") or 0.005)
    scale = float(res.get("time_scale") or p.get("time_scale") or 1.0)
    busy = res.get("guest_busy_share_baseline")
    busy_s = f"{busy:.0%}" if isinstance(busy, (int, float)) else "not measured"
    verdict = "gate_off" if share >= 1 else ("raised" if share > 0.005 + 1e-9 else
                                             "wsl_no_sampler" if res.get("gate_excludes") == "sampler" else "wsl")
    return claim("auto_reclaim.idle_rule", verdict, _IDLE, value=share, unit="share", share=share, scale=scale,
                 busy=busy_s)


# ------------------------------------------------------------------ the engine on a model VM (section 2)

_MODEL = {
    "one_drop": "**{label}**: one `drop_caches` at minute **{first_min:.1f}**, {wait_min:.1f} idle minutes after the "
                "build; the cache fell from {cache_start} to **{cache_end}** at once; {compact}.",
    "steps": "**{label}**: first reclaim at minute **{first_min:.1f}**, {wait_min:.1f} idle minutes after the build, "
             "then a request {every}: {n} in all, freeing at most **{step_max}** each{freeing}; the cache was **{cache_end}** at "
             "minute {end_min:.0f}; {compact}.",
    "never": "**{label}**: never gives cache back (it stays at **{cache_end}**); {compact}.",
}


def _model_compact(n: int, runs_thread: bool) -> str:
    if n:
        return f"it compacted {n} time{'s' if n != 1 else ''}"
    return "it never compacted" if runs_thread else "no thread ran, so nothing compacted"


def model_setting(label: str, rows: "list[dict] | object", *, busy_until_s: float, poll_s: float,
                  runs_thread: bool = True) -> Claim:
    """What the engine decided for one setting on the model VM (rows from `autoreclaim_policy.simulate`):
    when it first gave cache back, in what steps, where the cache ended, how often it compacted."""
    import pandas as pd

    df = pd.DataFrame(rows)
    acts = df["actions"].fillna("")
    gives = df[acts.str.contains("reclaim|drop_caches")]
    n_compact = int(acts.str.count("compact_memory").sum())
    before = df["cache_bytes"].shift(1, fill_value=df["cache_bytes"].iloc[0])
    steps_kib = ((before - df["cache_bytes"])[gives.index] / 1024).tolist()
    ev = dict(label=label, cache_start=analysis.gib(df["cache_bytes"].iloc[0] / 1024),
              cache_end=analysis.gib(df["cache_bytes"].iloc[-1] / 1024), end_min=df["t_s"].iloc[-1] / 60,
              compact=_model_compact(n_compact, runs_thread), n=len(gives), n_compact=n_compact)
    if gives.empty:
        return claim(f"auto_reclaim.model.{label}", "never", _MODEL, **ev)
    first_s = float(gives["t_s"].iloc[0])
    ev.update(first_min=first_s / 60, wait_min=(first_s - busy_until_s) / 60,
              every=f"every {poll_s:g} s", steps_kib=steps_kib,
              step_max=analysis.mib(max(steps_kib)), n_freeing=sum(k > 0 for k in steps_kib))
    idle_n = len(gives) - ev["n_freeing"]
    ev["freeing"] = f" ({idle_n} found no cache left to free)" if idle_n else ""
    verdict = "one_drop" if acts[gives.index[0]].startswith("drop_caches") and len(gives) == 1 else "steps"
    return claim(f"auto_reclaim.model.{label}", verdict, _MODEL, value=first_s, unit="s", **ev)


# ------------------------------------------------------------------ what each recorded run did (section 3)

_ACTED = {
    "dropped": "**{label}**: {wait_s:.1f} s after the idle mark ({wsl_wait}) it wrote `drop_caches={level}`{compact}; "
               "it took {own}{cached_taken} of the guest's Cached.",
    "stepped_within_clamp": "**{label}**: {wait_s:.1f} s after the idle mark ({wsl_wait}) it made the first of **{n}** "
                            "reclaim request(s), of {sizes}: each within WSL's step, min(cache − 128 MiB, RAM/32 = "
                            "{ram32} clamped to 256 MiB…1 GiB = **{step}**){compact}. Together they took "
                            "{own}{cached_taken} of the guest's Cached.",
    "stepped_outside_clamp": "**{label}**: its {n} reclaim request(s), of {sizes}, are NOT all within WSL's step "
                             "(RAM/32 = {ram32} clamped to 256 MiB…1 GiB = {step}): the engine did not follow the "
                             "source in this run.",
    "stepped": "**{label}**: {wait_s:.1f} s after the idle mark ({wsl_wait}) it made the first of **{n}** reclaim "
               "request(s), of {sizes} (3 % of used memory each){compact}. Together they took "
               "{own}{cached_taken} of the guest's Cached.",
    "no_action": "**{label}**: made no drop or reclaim after the idle mark in this recording, although its idle "
                 "window ({window_s:.1f} s at ×{scale:g}) fits {fits:.0f} times in the {watch_s:.0f} s it watched: "
                 "{why}.",
}


def _first_int(text: str) -> int | None:
    word = str(text).split(" ", 1)[0]
    return int(word) if word.isdigit() else None


def _at(rec: Recording, column: str, t: float, scale: float = 1.0) -> str:
    if column not in rec.samples.columns or rec.samples[column].isna().all():
        return "—"
    return analysis.gib(analysis.value_at(rec, column, t) / scale)


def _policy(rec: Recording):
    from ...wsl.autoreclaim_policy import Policy
    p = rec.meta.get("parameters", {})
    return Policy(p.get("policy", "gradual"), p.get("variant", "released"))


def _wsl_wait(rec: Recording, wait_s: float, scale: float) -> str:
    """The wait in WSL's clock, and why where it is longer than the idle window plus the baseline poll:
    the CPU gate counted polls as busy (when it was on), else not measured."""
    policy = _policy(rec)
    window_s = policy.window_polls * policy.poll_interval_s
    text = f"{wait_s:.0f} s of WSL's clock at ×{scale:g}"
    if wait_s <= window_s + 2 * policy.poll_interval_s:
        return text
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    share = float(res.get("idle_share") or p.get("idle_share") or 0.005)
    busy = res.get("guest_busy_share_baseline")
    why = (f"its CPU gate ({share:.1%}) counted polls as busy, on a guest busy at {busy:.1%} in the baseline"
           if share < 1 and isinstance(busy, (int, float)) else "which polls it counted as busy is not recorded")
    return f"{text}, more than its {window_s:.0f} s window: {why}"


def gate_figures(rec: Recording) -> dict | None:
    """The gate's figures from the run's polls (None: the run did not record its polls)."""
    res, p = rec.meta.get("results") or {}, rec.meta.get("parameters") or {}
    polls = res.get("polls")
    if not isinstance(polls, list) or not polls:
        return None
    busy = sorted(r["busy_share"] for r in polls if isinstance(r.get("busy_share"), (int, float)))
    if not busy:
        return None
    nprocs = res.get("nprocs") or 1
    limit = float(res.get("gate_limit_share") or res.get("idle_share") or p.get("idle_share") or 0.005)
    loop = res.get("busy_loop_cpu_share")
    return dict(polls=len(busy), busy_min=busy[0], busy_median=busy[len(busy) // 2], busy_max=busy[-1],
                idle_polls=sum(1 for b in busy if b <= limit + 1e-12), limit=limit, nprocs=nprocs,
                limit_one_cpu=limit * nprocs, loop=loop, loop_asked=p.get("busy"),
                loop_text=(f"the busy loop itself used {loop:.1%} of one CPU ({p.get('busy', 0):.0%} asked)"
                           if isinstance(loop, (int, float)) else "the run had no busy loop"),
                scale=float(res.get("time_scale") or p.get("time_scale") or 1.0))


def _no_action_reason(rec: Recording) -> dict:
    """Why a run made no drop or reclaim, from the gate's figures: its threshold against the baseline's busy CPU."""
    policy = _policy(rec)
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    scale = float(res.get("time_scale") or p.get("time_scale") or 1.0)
    share = float(res.get("idle_share") or p.get("idle_share") or 0.005)
    busy = res.get("guest_busy_share_baseline")
    idle = rec.event_times("idle")
    watch_s = _end_s(rec) - (idle[0] if idle else 0.0)
    window_s = policy.window_polls * policy.poll_interval_s * scale
    gate = gate_figures(rec)
    user_only = (" (WSL's released test counts user CPU only, which this run did not record apart)"
                 if p.get("variant", "released") == "released" else "")
    if share < 1 and gate is not None:
        # the polls' own figures: what the gate saw, not the baseline before it
        busy_range = f"{gate['busy_min']:.1%} to {gate['busy_max']:.1%} (median {gate['busy_median']:.1%})"
        why = (f"its idle test never passed: busy CPU was {busy_range} at every one of its {gate['polls']} polls, "
               f"above the {share:.1%} it allows{user_only}" if gate["idle_polls"] == 0 else
               f"its gate counted only {gate['idle_polls']} of {gate['polls']} polls idle (busy CPU {busy_range}, "
               f"limit {share:.1%}){user_only}, not the {policy.window_polls} in a row its window needs")
    elif share < 1 and isinstance(busy, (int, float)) and busy > share:
        why = (f"its idle test never passed: busy CPU was {busy:.1%} in the baseline, above the {share:.1%} it "
               f"allows{user_only}")
    else:
        why = ("why is not measured here: the run records the gate's CPU only in its baseline "
               f"({f'busy {busy:.1%}' if isinstance(busy, (int, float)) else 'not measured'}), not at each poll")
    return dict(window_s=window_s, scale=scale, watch_s=watch_s, fits=watch_s / window_s if window_s else 0.0,
                why=why, idle_share=share, busy_baseline=busy)


def _taken(rec: Recording, columns: tuple[str, ...], scale: float = 1.0) -> str:
    """What the run's own drops and reclaims took from `columns` (summed across each action), formatted."""
    kib = fall_across_actions(rec, columns, action_times(rec))
    return "—" if kib is None else analysis.gib(kib / scale)


def actions(rec: Recording, label: str | None = None) -> Claim:
    """What the run did after its idle mark: one drop (and the compaction after it), or reclaim steps
    checked against WSL's rule for the variant (newer: RAM/32 clamped to 256 MiB…1 GiB)."""
    from ...wsl.autoreclaim_policy import NEWER_FLOOR_BYTES, newer_step_bytes

    label = label or _label(rec)
    p, res = rec.meta.get("parameters", {}), rec.meta.get("results", {})
    key = f"auto_reclaim.actions.{label}"
    t = first_action_s(rec)
    if t is None:
        return claim(key, "no_action", _ACTED, label=label, **_no_action_reason(rec))
    idle = rec.event_times("idle")
    t_idle = idle[0] if idle else 0.0
    scale = float(res.get("time_scale") or p.get("time_scale") or 1.0)
    ev = rec.events
    after = ev[ev["t_s"] >= t - 1e-9]
    compacts = after[(after["kind"] == "compact_memory")]["t_s"].tolist()
    ev_common = dict(label=label, t_action_s=round(t, 2), wait_s=t - t_idle,
                     wsl_wait=_wsl_wait(rec, (t - t_idle) / scale, scale),
                     own_idle=_at(rec, "workload_cgroup_bytes", t_idle, 1024),
                     own_taken=_taken(rec, ("workload_cgroup_bytes",), 1024), cached_taken=_taken(rec, ("cached_kib",)))
    # a run with the experiment's own cgroup (local) names its share; the kit's VM reclaims the whole guest's
    ev_common["own"] = ("" if ev_common["own_taken"] == "—" else
                        f"**{ev_common['own_taken']}** of the {ev_common['own_idle']} of cache charged to the "
                        "experiment's cgroup and ")
    if not ev_common["own"]:
        ev_common["cached_taken"] = f"**{ev_common['cached_taken']}**"
    drops = after[after["kind"] == "drop_caches"]
    if len(drops) and float(drops["t_s"].iloc[0]) <= t + 1e-9:
        level = str(drops["detail"].iloc[0]).strip()
        nxt = [c for c in compacts if c >= t]
        earlier = [c for c in ev[ev["kind"] == "compact_memory"]["t_s"] if c < t - 1e-9]
        if nxt:
            compact = f", then `compact_memory` {nxt[0] - t:.2f} s later"
        elif p.get("variant") == "released" and earlier:
            compact = (f", and no `compact_memory` followed it (its {len(earlier)} came before the drop: the released "
                       "thread compacts after a poll that saw user CPU, once the next second is quiet, not after a drop)")
        elif p.get("variant") == "released":
            busy = res.get("guest_busy_share_baseline")
            compact = (", and no `compact_memory` followed: the released thread compacts only when the second "
                       "after a poll is quiet (user CPU under 1 %), which `idle_share` does not change, and on this "
                       f"guest{f', busy at {busy:.0%} in the baseline,' if isinstance(busy, (int, float)) else ''} "
                       "no such second came before the run ended")
        else:
            compact = ", and no `compact_memory` followed"
        return claim(key, "dropped", _ACTED, value=t - t_idle, unit="s", level=level, compact=compact,
                     compact_after_s=(nxt[0] - t) if nxt else None, **ev_common)
    reqs = [b for b in (_first_int(d) for d in after[after["kind"] == "reclaim"]["detail"]) if b is not None]
    sizes = (analysis.mib(reqs[0] / 1024) if len(set(reqs)) == 1
             else f"{analysis.mib(min(reqs) / 1024)} to {analysis.mib(max(reqs) / 1024)}") if reqs else "unknown size"
    n_compact = len(compacts)
    compact = f", with {n_compact} `compact_memory` after them" if n_compact else ", with no `compact_memory` after them"
    common = dict(n=len(reqs), sizes=sizes, requests_bytes=reqs, compact=compact, **ev_common)
    if p.get("variant") != "newer":
        return claim(key, "stepped", _ACTED, value=t - t_idle, unit="s", **common)
    total_kib = analysis.value_at(rec, "mem_total_kib", t)
    step = newer_step_bytes(int(total_kib * 1024))
    # WSL writes min(cache - floor, step): never more than the step, and only the last may be smaller
    within = bool(reqs) and all(0 < b <= step for b in reqs) and all(b == step for b in reqs[:-1])
    return claim(key, "stepped_within_clamp" if within else "stepped_outside_clamp", _ACTED,
                 value=max(reqs) if reqs else None, unit="bytes", ram32=analysis.mib(total_kib / 32),
                 step=analysis.mib(step / 1024), step_bytes=step, floor_bytes=NEWER_FLOOR_BYTES, **common)


def _pct_range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.0%}" if round(lo, 2) == round(hi, 2) else f"{lo:.0%}–{hi:.0%}"


def idle_rules(recs: Mapping[str, Recording]) -> Claim:
    """idle_rule over several runs: one sentence when they share the idle threshold, with each
    variant's time compression and the range of busy CPU their baselines saw."""
    rules = {name: idle_rule(rec) for name, rec in recs.items()}
    shares = {c.evidence["share"] for c in rules.values()}
    verdicts = {c.verdict for c in rules.values()}
    if len(shares) != 1 or len(verdicts) != 1:
        return claim("auto_reclaim.idle_rule", "mixed", {"mixed": "{each}"},
                     each=" ".join(f"({name}) {c.sentence}" for name, c in rules.items()))
    by_variant: dict[str, float] = {}
    for rec, c in zip(recs.values(), rules.values()):
        by_variant.setdefault(str(rec.meta.get("parameters", {}).get("variant", "?")), c.evidence["scale"])
    scales = ", ".join(f"×{s:g} ({v})" for v, s in by_variant.items()) if len(set(by_variant.values())) > 1 \
        else f"×{next(iter(by_variant.values())):g}"
    busy = [r.meta.get("results", {}).get("guest_busy_share_baseline") for r in recs.values()]
    busy = [b for b in busy if isinstance(b, (int, float))]
    share = shares.pop()
    return claim("auto_reclaim.idle_rule", verdicts.pop(), _IDLE_ALL, value=share, unit="share", share=share,
                 scale=scales, busy=_pct_range(busy) if busy else "not measured", n=len(recs))


_IDLE_ALL = {
    "gate_off": "**How idle was decided.** Other programs kept this guest's busy CPU at **{busy}** in the baselines "
                "of these {n} runs, far above WSL's 0.5 % idle threshold, so WSL's test could never pass here: they "
                "used `idle_share={share:g}` (the CPU gate off). The idle windows' length is WSL's, counted from the "
                "workload's end, time-compressed {scale}.",
    "raised": "**How idle was decided.** These {n} runs counted the guest as idle at busy CPU up to **{share:.1%}** "
              "(WSL: 0.5 %), time-compressed {scale}; busy CPU in their baselines was {busy}.",
    "wsl": "**How idle was decided.** WSL's own threshold, 0.5 % busy CPU, time-compressed {scale}.",
}


# ------------------------------------------------------------------ verdicts that close lab 04's predictions

_TIMING = {
    "released_gradual_first": "**Who gives cache back first.** On the model VM, in the released code `gradual` came "
                              "before `dropCache`: {rg:.0f} idle minutes after the build against {rd:.0f}; the rewrite "
                              "acts after {n:.0f} idle minutes in both modes.",
    "dropcache_first": "**Who gives cache back first.** On the model VM `dropCache` came first in both versions.",
    "within_a_minute": "**Who gives cache back first.** On the model VM every setting acted within a minute of the "
                       "build's end.",
    "other": "**Who gives cache back first.** On the model VM: released `gradual` after {rg} idle minutes, released "
             "`dropCache` after {rd}, the rewrite's `dropCache` after {nd} and its `gradual` after {ng}.",
}


def model_timing(model: Mapping[str, Claim]) -> Claim:
    """From the model_setting claims ("released · gradual" ...): which setting gives cache back first."""
    wait = {k: c.evidence.get("wait_min") for k, c in model.items()}
    rg, rd = wait.get("released · gradual"), wait.get("released · dropCache")
    ng, nd = wait.get("newer · gradual"), wait.get("newer · dropCache")
    acted = [w for w in (rg, rd, ng, nd) if w is not None]
    ev = dict(rg=rg, rd=rd, ng=ng, nd=nd)
    if None in (rg, rd, ng, nd):
        verdict = "other"
    elif max(acted) <= 1.0:
        verdict = "within_a_minute"
    elif rg < rd and abs(ng - nd) < 1e-9:
        verdict = "released_gradual_first"
    elif rd <= rg and nd <= ng:
        verdict = "dropcache_first"
    else:
        verdict = "other"
    return claim("auto_reclaim.model_timing", verdict, _TIMING, n=nd if nd is not None else 0.0, **ev)


_CURVES = {
    "cliff_and_staircase": "**The two Cached curves.** `dropCache` fell in one cliff (one `drop_caches`), `gradual` "
                           "in a staircase of {n} reclaim steps.",
    "two_cliffs": "**The two Cached curves.** Both fell at once: `gradual` needed a single reclaim step here.",
    "not_shown": "**The two Cached curves.** These runs do not show the two shapes (a run made no drop or no "
                 "reclaim; see the claims below).",
}


def curves(gradual: Recording, drop: Recording) -> Claim:
    """The shape of the two runs' cache curves: one drop against a staircase of reclaim steps."""
    g, d = actions(gradual, "gradual"), actions(drop, "dropCache")
    n = int(g.evidence.get("n", 0)) if g.verdict.startswith("stepped") else 0
    if d.verdict != "dropped" or n == 0:
        verdict = "not_shown"
    else:
        verdict = "cliff_and_staircase" if n >= 2 else "two_cliffs"
    return claim("auto_reclaim.curves", verdict, _CURVES, value=n, unit="steps", n=n)
