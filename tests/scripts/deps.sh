#!/usr/bin/env bash
# Makes sure the test tools are present: pg_prove (libtap-parser-sourcehandler-pgtap-perl), the
# pgtap, plpgsql_check and plproxy extensions (postgresql-15-pgtap, postgresql-15-plpgsql-check,
# postgresql-15-plproxy: the sharded store's tests route with PL/Proxy), and
# pgbouncer, which the connection-pooler tests start themselves (they skip without it unless CI
# is set).
# Installs them with apt-get when running as root on a machine that has it, after asking (CI, or
# ANNALS_INSTALL_DEPS=yes, answers yes); otherwise prints the exact command and fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source tests/scripts/lib.sh

packages=()
command -v pg_prove >/dev/null || packages+=(libtap-parser-sourcehandler-pgtap-perl)
command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]] || packages+=(pgbouncer)

# The extensions must be available to the server. Ask it when it is reachable; otherwise look
# where Debian's packages put them.
if available=$(admin_psql -At -c "SELECT string_agg(name, ' ') FROM pg_catalog.pg_available_extensions
                                   WHERE name IN ('pgtap', 'plpgsql_check', 'plproxy')" 2>/dev/null); then
    [[ " $available " == *" pgtap "* ]] || packages+=(postgresql-15-pgtap)
    [[ " $available " == *" plpgsql_check "* ]] || packages+=(postgresql-15-plpgsql-check)
    [[ " $available " == *" plproxy "* ]] || packages+=(postgresql-15-plproxy)
else
    echo "note: PostgreSQL at $ADMIN_URL is not reachable; checking the extension files instead" >&2
    compgen -G '/usr/share/postgresql/*/extension/pgtap.control' >/dev/null || packages+=(postgresql-15-pgtap)
    compgen -G '/usr/share/postgresql/*/extension/plpgsql_check.control' >/dev/null || packages+=(postgresql-15-plpgsql-check)
    compgen -G '/usr/share/postgresql/*/extension/plproxy.control' >/dev/null || packages+=(postgresql-15-plproxy)
fi

if [[ ${#packages[@]} -eq 0 ]]; then
    echo "deps: pg_prove, pgtap, plpgsql_check, plproxy and pgbouncer are available"
    exit 0
fi

echo "deps: missing ${packages[*]}"
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    # Changing the system's packages is asked for, not assumed: CI (or ANNALS_INSTALL_DEPS=yes)
    # says yes up front; a person at a terminal answers; anything else gets the command to run.
    answer=${ANNALS_INSTALL_DEPS:-}
    [[ -n ${CI:-} ]] && answer=yes
    if [[ -z $answer && -t 0 ]]; then
        read -r -p "deps: install them with apt-get now? [y/N] " answer
    fi
    if [[ $answer != [yY]* ]]; then
        echo "error: not installing; install them yourself, or run with ANNALS_INSTALL_DEPS=yes:" >&2
        echo "  apt-get update && apt-get install -y ${packages[*]}" >&2
        exit 1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
    exit 0
fi
echo "error: install them first, as root:" >&2
echo "  apt-get update && apt-get install -y ${packages[*]}" >&2
exit 1
