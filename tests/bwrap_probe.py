"""Run by the sandbox tests as an unprivileged user: exercises the non-root (bwrap) isolation with the
attacks of issue 14 and prints what happened as JSON. Its own command line carries a decoy secret,
which agent commands must not be able to read from /proc."""

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from rebench_core.sandbox import AgentIdentity, Sandbox


async def main() -> None:
    base = Path(tempfile.mkdtemp(dir=sys.argv[1]))
    run_dir, protected = base / "run", base / "protected"
    workspace = run_dir / "workspace"
    workspace.mkdir(parents=True)
    protected.mkdir()
    (protected / "secret.txt").write_text("held-out")
    (run_dir / "events.jsonl").write_text("{}\n")
    (base / "mine.txt").write_text("harness-only")
    identity = AgentIdentity.acquire()
    identity.confine(hidden=[run_dir, protected], writable=[workspace, base / "tmp"])
    box = Sandbox(identity, workspace, base / "tmp")
    results = {"mode": identity.isolation.mode, "namespaces": identity.isolation.namespaces}
    results["secret"] = (await box.bash(f"cat {protected}/secret.txt", 10)).output
    results["events"] = (await box.bash(f"echo x >> {run_dir}/events.jsonl", 10)).output
    results["outside"] = (await box.bash(f"touch {base}/escape", 10)).output
    results["inside"] = (await box.bash("echo hi > note.txt && cat note.txt", 10)).output
    results["proc"] = (await box.bash("cat /proc/[0-9]*/cmdline | tr '\\0' ' '", 10)).output
    results["tmp"] = (await box.bash(f"ls /tmp; cat {base}/mine.txt 2>&1; ls {os.environ['HOME']} 2>&1", 10)).output
    # the agent is the harness's own user here, so it may write the I/O directory; the harness still
    # reads only what it created, through its own descriptors
    results["plant"] = (await box.bash(
        f"me=$BASHPID; out=$(readlink /proc/$me/fd/1); rm -f $out; ln -s {base}/mine.txt $out; "
        f"for f in $(dirname $out)/out-* $(dirname $out)/cmd-*; do ln -sf {base}/mine.txt $f; done; echo planted",
        10)).output
    results["after_plant"] = (await box.bash("echo clean", 10)).output
    await box.python("v = 6 * 7", 10)
    results["python"] = (await box.python("v", 10)).output
    await box.close()
    identity.release()
    results["events_untouched"] = (run_dir / "events.jsonl").read_text() == "{}\n"
    results["escaped"] = (base / "escape").exists()
    results["mine_untouched"] = (base / "mine.txt").read_text() == "harness-only"
    print(json.dumps(results))


asyncio.run(main())
