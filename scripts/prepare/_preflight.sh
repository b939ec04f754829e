# Sourced by scripts/prepare/download_*.sh with the download's arguments ("$@", first the kind of files), BEFORE the
# venv is created or filled: stops in one line when the package the download needs (gdown; clip for CLIP) is not in
# the venv the scripts use ($HMU_VENV, default .venv), saying how to install it and naming the target folders.
_hmu_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
_hmu_venv="${HMU_VENV:-$_hmu_root/.venv}"
_hmu_py="$_hmu_venv/bin/python"
[ -x "$_hmu_py" ] || _hmu_py="python3"   # no venv yet: the check runs on the system python (stdlib only)
case " $* " in *" -h "*|*" --help "*) ;; *)
    PYTHONPATH="$_hmu_root${PYTHONPATH:+:$PYTHONPATH}" "$_hmu_py" -m src.prepare.download "$@" --preflight --venv "$_hmu_venv" || exit $? ;;
esac
