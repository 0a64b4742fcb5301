#!/bin/bash
# Start standalone HBase in the background, then the Thrift server in the foreground, so the
# container lives as long as the Thrift server that clients use.
set -euo pipefail
/opt/hbase/bin/hbase-daemon.sh --config /opt/hbase/conf start master
exec /opt/hbase/bin/hbase --config /opt/hbase/conf thrift start -p 9090 --infoport 9095
