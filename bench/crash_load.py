#!/usr/bin/env python3
"""Mixed load and after-crash checks for bench/crash.sh (Python 3 standard library only).

  crash_load.py load  URL CERTS LEDGER WORKERS SEED   mixed load until killed
  crash_load.py check URL CERTS LEDGER DB             the checks after a restart

`load` runs WORKERS threads, each with its own kept-alive mTLS connection as crm.ocmw-gent
(purpose trajectory_guidance): registrations of fresh synthetic participants, PATCH of their
trajectory fields with If-Match, reads, and the sync feed. Every answered request is appended to
LEDGER (one JSON line, flushed at once) with its X-Request-Id; every 2xx write also with the pid,
version and values the gateway acknowledged. The gateway is killed while this runs, so a request
in flight has no line: it may or may not have happened, and the checks allow both.

`check` (the gateway restarted) verifies, and prints one JSON summary line:
  - every acknowledged registration and PATCH is there: the participant answers with a version
    at least the acknowledged one, and with exactly the acknowledged values at that version;
  - every answered request id (2xx or not) has an audit record (no answer before its record),
    except sync pages with no changes, which concern no participant and are not audited;
  - no half-written participant: each has its sealed national number, a data key, a change-feed
    entry and an active involvement, and its read decrypts (a 200);
  - the live chain verifies (GET /v1/audit/verify).
It exits 1 when a check fails.
"""

import http.client
import json
import os
import random
import sqlite3
import ssl
import sys
import threading
import time

CLIENT = "crm.ocmw-gent"
PURPOSE = "trajectory_guidance"
STATUSES = ["referred", "intake", "active", "paused", "outflow", "aftercare", "closed"]


def context(certs, client):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    ctx.load_cert_chain(
        os.path.join(certs, "clients", client + ".pem"),
        os.path.join(certs, "clients", client + ".key"),
    )
    return ctx


class Conn:
    """One kept-alive mTLS connection that reconnects after an error."""

    def __init__(self, url, certs, client=CLIENT, purpose=PURPOSE):
        host, port = url.split("://")[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.ctx = context(certs, client)
        self.headers = {"X-Purpose": purpose, "X-Acting-User": "crash-bench"}
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                self.host, self.port, context=self.ctx, timeout=30
            )
        h = dict(self.headers)
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            payload = r.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = None
        return r.status, r.getheader("x-request-id"), doc


def insz(year, month, day, serial):
    """A valid synthetic national register number (the published check-digit rule)."""
    first_nine = "%02d%02d%02d%03d" % (year % 100, month, day, serial)
    n = int(first_nine) + (2000000000 if year >= 2000 else 0)
    return "%s%02d" % (first_nine, 97 - n % 97)


def load(url, certs, ledger_path, workers, seed):
    ledger = open(ledger_path, "a", buffering=1)
    lock = threading.Lock()

    def note(entry):
        with lock:
            ledger.write(json.dumps(entry) + "\n")
            ledger.flush()

    def worker(w):
        rng = random.Random(seed * 1000 + w)
        conn = Conn(url, certs)
        mine = {}  # pid -> last acknowledged version
        counter = 0
        cursor = None
        while True:
            op = rng.random()
            try:
                if op < 0.25 or not mine:
                    # Fresh numbers: born 1931..1959 (outside the demo caseload), unique per
                    # seed, worker and counter, so a retry of the script never collides.
                    counter += 1
                    k = (seed % 997) * 8 * 1000 + w * 1000 + counter
                    year = 1931 + k // (12 * 28 * 998) % 29
                    month = 1 + k // (28 * 998) % 12
                    day = 1 + k // 998 % 28
                    number = insz(year, month, day, 1 + k % 998)
                    fields = {
                        "identity.insz": number,
                        "identity.given_name": "Crash%d" % k,
                        "identity.family_name": "Cycle%d" % seed,
                        "trajectory.status": "referred",
                        "trajectory.next_steps": "registered %d" % k,
                    }
                    status, rid, doc = conn.request(
                        "POST", "/v1/participants", {"fields": fields}
                    )
                    entry = {"op": "register", "status": status, "rid": rid}
                    if status in (200, 201):
                        entry.update(pid=doc["pid"], version=doc["version"])
                        if status == 201:
                            entry["fields"] = fields
                            mine[doc["pid"]] = doc["version"]
                    note(entry)
                elif op < 0.55:
                    pid = rng.choice(list(mine))
                    fields = {
                        "trajectory.status": rng.choice(STATUSES),
                        "trajectory.next_steps": "step %d.%d" % (w, rng.randrange(10**9)),
                    }
                    status, rid, doc = conn.request(
                        "PATCH",
                        "/v1/participants/" + pid,
                        {"fields": fields},
                        {"If-Match": str(mine[pid])},
                    )
                    entry = {"op": "patch", "status": status, "rid": rid, "pid": pid}
                    if status == 200:
                        entry.update(version=doc["version"], fields=fields)
                        mine[pid] = doc["version"]
                    elif status == 412:
                        # Someone (an unacknowledged write before a crash) moved it on.
                        s2, rid2, d2 = conn.request("GET", "/v1/participants/" + pid)
                        note({"op": "read", "status": s2, "rid": rid2})
                        if s2 == 200:
                            mine[pid] = d2["version"]
                    note(entry)
                elif op < 0.85:
                    pid = rng.choice(list(mine))
                    status, rid, _ = conn.request("GET", "/v1/participants/" + pid)
                    note({"op": "read", "status": status, "rid": rid})
                else:
                    path = "/v1/changes?limit=50"
                    if cursor:
                        path += "&since=" + cursor
                    status, rid, doc = conn.request("GET", path)
                    entry = {"op": "sync", "status": status, "rid": rid}
                    if status == 200:
                        entry["changes"] = len(doc.get("changes", []))
                    note(entry)
                    if status == 200:
                        cursor = doc.get("next") or cursor
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)  # the gateway is gone; it is being killed

    for w in range(workers):
        threading.Thread(target=worker, args=(w,), daemon=True).start()
    while True:
        time.sleep(3600)


def check(url, certs, ledger_path, db_path):
    problems = []
    entries = []
    with open(ledger_path) as f:
        for line in f:
            try:
                entries.append(json.loads(line))
            except ValueError:
                pass  # a line cut by the kill of the load driver itself

    # What was acknowledged, per pid: the highest version and its values.
    acked = {}
    for e in entries:
        if e["op"] in ("register", "patch") and "fields" in e:
            pid, v = e["pid"], e["version"]
            prev = acked.get(pid)
            if prev is None:
                acked[pid] = {"version": v, "fields": dict(e["fields"])}
            elif v >= prev["version"]:
                fields = dict(prev["fields"]) if e["op"] == "patch" else {}
                fields.update(e["fields"])
                acked[pid] = {"version": v, "fields": fields}
    # Registration values that a later PATCH did not touch stay: carry them forward.
    regs = {e["pid"]: e["fields"] for e in entries if e["op"] == "register" and "fields" in e}
    for pid, a in acked.items():
        for k, val in regs.get(pid, {}).items():
            a["fields"].setdefault(k, val)

    conn = Conn(url, certs)
    lost = 0
    for pid, a in sorted(acked.items()):
        status, _, doc = conn.request("GET", "/v1/participants/" + pid)
        if status != 200:
            problems.append("acknowledged participant %s answers %d" % (pid, status))
            lost += 1
            continue
        if doc["version"] < a["version"]:
            problems.append(
                "%s: version %d < acknowledged %d" % (pid, doc["version"], a["version"])
            )
            lost += 1
        elif doc["version"] == a["version"]:
            for k, val in a["fields"].items():
                if doc["fields"].get(k) != val:
                    problems.append("%s: %s differs from the acknowledged value" % (pid, k))
                    lost += 1

    # Every answered request id has its audit record.
    db = sqlite3.connect(db_path, timeout=30)
    audited = {
        r[0]
        for r in db.execute("SELECT DISTINCT json_extract(record, '$.request_id') FROM audit_records")
    }
    # A sync page with no changes discloses no participant, and the gateway audits accesses
    # to participants (and every refusal): such a page has no record by design.
    answered = {
        e["rid"]
        for e in entries
        if e.get("rid") and not (e["op"] == "sync" and e.get("changes") == 0)
    }
    missing = answered - audited
    for rid in sorted(missing)[:5]:
        problems.append("answered request %s has no audit record" % rid)

    # No half-written participant.
    half = db.execute(
        """SELECT count(*) FROM participants p
           WHERE length(p.wrapped_dek) = 0
              OR NOT EXISTS (SELECT 1 FROM field_values f
                             WHERE f.participant_id = p.id AND f.field = 'identity.insz')
              OR NOT EXISTS (SELECT 1 FROM changes c WHERE c.participant_id = p.id)
              OR NOT EXISTS (SELECT 1 FROM involvements i
                             WHERE i.participant_id = p.id AND i.ended_at IS NULL)"""
    ).fetchone()[0]
    participants = db.execute("SELECT count(*) FROM participants").fetchone()[0]
    db.close()
    if half:
        problems.append("%d half-written participants" % half)

    dpo = Conn(url, certs, client="dpo.stad-gent", purpose="audit")
    status, _, report = dpo.request("GET", "/v1/audit/verify")
    if status != 200 or not report.get("ok"):
        problems.append("live chain verification: %d %s" % (status, report))

    summary = {
        "ok": not problems,
        "answered": len(answered),
        "unaudited": len(missing),
        "acknowledged_participants": len(acked),
        "lost_writes": lost,
        "participants": participants,
        "half_written": half,
        "audit_records": (report or {}).get("records"),
        "problems": problems[:10],
    }
    print(json.dumps(summary))
    return 0 if not problems else 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "load":
        load(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif cmd == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]))
    else:
        sys.exit("usage: crash_load.py load|check ...")
