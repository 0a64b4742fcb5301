# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: setup system-deps test-deps demo test unit bench clean

setup: system-deps $(VENV)/.installed

# Spark needs a Java runtime; MariaDB and Redis are installed by `accelsync devstack up`.
# docker-compose (Debian's) validates docker/compose.yaml in the tests; no Docker engine needed.
system-deps:
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless; \
	  else echo "Spark needs Java 17: install openjdk-17-jre-headless" >&2; exit 1; fi; }
	@command -v docker-compose >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose; \
	  else echo "the docker/ tests need docker-compose: install the Debian package docker-compose" >&2; fi; }

# The Airflow plugin's page and the Airflow UI are tested in a real headless browser: Debian's
# chromium. (PostgreSQL, for the Airflow deployment tests, is installed by `accelsync devstack`.)
test-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "the plugin's browser test needs chromium: install the Debian package chromium" >&2; exit 1; fi; }

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev,celery]'
	touch $@

demo: setup
	$(VENV)/bin/accelsync demo

test: setup test-deps
	$(VENV)/bin/accelsync devstack up
	$(PY) -m pytest -q

unit: setup
	$(PY) -m pytest -q tests/unit

bench: setup
	$(VENV)/bin/accelsync devstack up
	$(PY) bench/mysql_to_redis.py --rows 1000000
	$(PY) bench/kafka_to_redis.py --rows 1000000
	$(PY) bench/logs_to_redis.py --rows 1000000
	$(PY) bench/mysql_to_hbase.py --rows 1000000
	$(PY) bench/logs_to_druid.py --rows 1000000
	$(PY) bench/dag_parse.py --specs 50

clean:
	rm -rf .accelsync build *.egg-info src/*.egg-info
