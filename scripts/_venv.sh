# Sourced by the scripts here: create .venv if missing and install the project with the
# extras given as arguments, e.g. `install_into_venv test`.
install_into_venv() {
  local py=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$1]"
}
