#!/usr/bin/env bash
# Installs the Java runtime PySpark 4 needs (Java 17 or newer): Debian's openjdk-17-jre-headless.
# `make test` calls it, as it calls install_browser.sh. Safe to run again:
#   - a java >= 17 already there ($JAVA_HOME/bin/java, or java on PATH): prints it, exits 0;
#   - else, as root with apt-get: installs openjdk-17-jre-headless, exits 0 if java works then;
#   - else: says why on stderr and exits 1 (10d's Spark cells and the Spark tests then skip).
set -u
want=17

major_of() {  # the major version of the java binary $1 ("17"), or nothing
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = //p' | head -n 1
}

found_java() {  # prints "java: <path> (<major>)" and succeeds when a java >= $want is there
  local candidate major
  for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    major=$(major_of "$candidate")
    case "$major" in '' | *[!0-9]*) continue ;; esac
    if [ "$major" -ge "$want" ]; then
      echo "install_java: java $major at $candidate"
      return 0
    fi
  done
  return 1
}

found_java && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_java: no Java >= $want, and this is not root with apt-get: cannot install" \
    "openjdk-17-jre-headless (the Spark parts of 10d and tests/test_spark_batch.py will skip)." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
started=$(date +%s)
install() { apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null 2>&1; }
# A machine that never ran `apt-get update` has no package lists: update only when needed.
if ! install; then
  apt-get update -qq >/dev/null 2>&1
  if ! install; then
    echo "install_java: apt-get could not install openjdk-17-jre-headless" \
      "(the Spark parts of 10d and tests/test_spark_batch.py will skip)." >&2
    exit 1
  fi
fi
echo "install_java: installed openjdk-17-jre-headless in $(($(date +%s) - started)) s"
hash -r
found_java && exit 0
echo "install_java: openjdk-17-jre-headless is installed but no java >= $want is on PATH" >&2
exit 1
