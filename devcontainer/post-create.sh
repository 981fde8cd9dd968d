#!/usr/bin/env bash
# mlops-env dev container, post-create: install mlops-env into the conda base env (the env the
# course works in), then prove the container with `mlops-env doctor` and the smoke test (the
# course's ride-duration model), and print a summary.
#
# usage: post-create.sh --install SPEC [--editable] [--no-docker] [--smoke sample|course]
#   SPEC       what pip installs: "." (this workspace, the mlops-env repository) or a requirement
#              such as mlops-env==0.1.0 or git+https://...; --editable: pip install -e SPEC
#   --no-docker  the definition has no Docker inside: doctor skips its docker checks
#   --smoke    sample (default): synthetic data with the course's schema, no download, so the
#              step never depends on the network; course: the TLC files
# Needs ~/.mlops-env/devcontainer/conda.env, written by on-create.sh.
# Results: ~/.mlops-env/devcontainer/ post-create.log, doctor.json, smoke.json, summary.txt.
# Exit: 0 when every part passed (doctor warnings allowed); 1 otherwise, after the summary, so
# that Codespaces and `devcontainer up` report the failure. The container stays usable.
set -uo pipefail

STATE="$HOME/.mlops-env/devcontainer"
mkdir -p "$STATE"
LOG="$STATE/post-create.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1

SPEC=""; EDITABLE=0; DOCKER=1; SMOKE=sample
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --install) SPEC=${2:-}; shift 2 ;;
    --editable) EDITABLE=1; shift ;;
    --no-docker) DOCKER=0; shift ;;
    --smoke) SMOKE=${2:-}; shift 2 ;;
    *) echo "mlops-error: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$SPEC" ] || { echo "mlops-error: --install SPEC is required" >&2; exit 2; }
case "$SMOKE" in sample|course) ;; *) echo "mlops-error: --smoke must be sample or course" >&2; exit 2 ;; esac

# One line per part: "name<TAB>ok|warn|fail|skip<TAB>text".
PARTS=()
part() { PARTS+=("$1"$'\t'"$2"$'\t'"$3"); }
step() { echo; echo "=== mlops-env post-create: $*"; }

PREFIX=""; LABEL=""
if [ -r "$STATE/conda.env" ]; then
  # shellcheck disable=SC1091 # written by on-create.sh
  . "$STATE/conda.env"
fi
PY="$PREFIX/bin/python"
MLOPS="$PREFIX/bin/mlops-env"

if [ -z "$PREFIX" ] || [ ! -x "$PY" ]; then
  part conda fail "not installed: on-create.sh did not finish (see the creation log above)"
else
  part conda ok "$LABEL in $PREFIX ($("$PREFIX/bin/conda" --version 2>&1 | head -n1))"

  step "pip install ${SPEC} into $PREFIX"
  PIP=("$PY" -m pip install --disable-pip-version-check --no-input --progress-bar off)
  if [ "$EDITABLE" = 1 ]; then PIP+=(-e "$SPEC"); else PIP+=("$SPEC"); fi
  if "${PIP[@]}" && [ -x "$MLOPS" ]; then
    part mlops-env ok "$("$MLOPS" --version 2>&1) (pip install $([ "$EDITABLE" = 1 ] && echo "-e ")$SPEC)"
  else
    part mlops-env fail "pip install $SPEC failed (see above)"
  fi
fi

if [ -x "$MLOPS" ]; then
  step "mlops-env doctor"
  if ! "$MLOPS" doctor --help >/dev/null 2>&1; then
    part doctor skip "this mlops-env has no doctor command"
  else
    # `local` checks this machine as the client of remote workstations (SSH config, AWS, VS
    # Code's code command): not what makes this container ready.
    SKIP=local
    [ "$DOCKER" = 1 ] || SKIP=local,docker
    "$MLOPS" --json doctor --skip "$SKIP" > "$STATE/doctor.json"
    rc=$?
    if [ "$rc" = 0 ]; then part doctor ok "no problems"; else part doctor fail "problems found (exit $rc)"; fi
  fi

  step "mlops-env smoke-test ($SMOKE data)"
  SMOKE_ARGS=()
  [ "$SMOKE" = sample ] && SMOKE_ARGS=(--sample)
  "$MLOPS" --json smoke-test "${SMOKE_ARGS[@]}" > "$STATE/smoke.json"
  rc=$?
  if [ "$rc" = 0 ]; then part smoke-test ok "passed"; else part smoke-test fail "failed (exit $rc)"; fi
else
  part doctor skip "mlops-env is not installed"
  part smoke-test skip "mlops-env is not installed"
fi

# The summary: the parts, with doctor's categories and the smoke test's numbers from their JSON.
RERUN="bash $0 ${ARGS[*]}"
summary() {
  if [ -x "$PY" ]; then
    "$PY" - "$STATE" "$RERUN" "${PARTS[@]}" <<'PYEOF'
import json, sys
from pathlib import Path

state, rerun = Path(sys.argv[1]), sys.argv[2]
MARK = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}


def load(name):
    try:
        return json.loads((state / name).read_text())
    except (OSError, ValueError):
        return None


lines, failed = [], 0
for row in sys.argv[3:]:
    name, status, text = row.split("\t", 2)
    failed += status == "fail"
    doc = load("doctor.json") if name == "doctor" else load("smoke.json") if name == "smoke-test" else None
    detail = []
    if name == "doctor" and doc:
        cats = {}
        for c in doc.get("data", {}).get("checks", []):
            cats.setdefault(c["category"], []).append(c)
        parts = []
        for cat, checks in cats.items():
            n = {s: sum(c["status"] == s for c in checks) for s in ("fail", "warn")}
            parts.append(cat + (f" {n['fail']} problem(s)" if n["fail"] else " ok")
                         + (f" ({n['warn']} warning(s))" if n["warn"] else ""))
            for c in checks:
                if c["status"] in ("fail", "warn"):
                    hint = f" -> {c['hint']}" if c.get("hint") else ""
                    detail.append(f"      {MARK[c['status']]} {c['id']}: {c['message']}{hint}")
        text = ", ".join(parts) or text
    if name == "smoke-test" and doc:
        d = doc.get("data") or {}
        if status == "ok" and "rmse_train" in d:
            kind = "synthetic sample" if d.get("synthetic") else "course data"
            text = (f"RMSE train {d['rmse_train']:.3f}, validation {d['rmse_val']:.3f} min "
                    f"({kind}, {d.get('train_rows', 0):,} rows)")
        for e in doc.get("errors") or []:
            detail.append(f"      ✗ {e.get('message')}" + (f" -> {e['hint']}" if e.get("hint") else ""))
    lines.append(f"  {MARK.get(status, '?')} {name:<11} {text}")
    lines += detail
bar = "=" * 78
out = [bar, "mlops-env dev container: " + ("READY" if not failed else f"NOT READY ({failed} part(s) failed)"), *lines]
if failed:
    out += ["  The container is usable. Fix the problem above, then run again:", f"    {rerun}"]
else:
    out += ["  Open a terminal: conda's base env is active. Jupyter: port 8888, MLflow: port 5000.",
            "  The course's data: `mlops-env smoke-test` trains on the TLC files."]
out += [f"  Details: {state}/ (post-create.log, doctor.json, smoke.json)", bar]
text = "\n".join(out)
print(text)
(state / "summary.txt").write_text(text + "\n")
sys.exit(1 if failed else 0)
PYEOF
  else
    local failed=0 p
    echo "=============================================================================="
    for p in "${PARTS[@]}"; do
      IFS=$'\t' read -r name status text <<<"$p"
      [ "$status" = fail ] && failed=$((failed + 1))
      printf '  %-4s %-11s %s\n' "$status" "$name" "$text"
    done
    echo "mlops-env dev container: NOT READY ($failed part(s) failed). Run again: $RERUN"
    echo "=============================================================================="
    exit 1
  fi
}

echo
summary
