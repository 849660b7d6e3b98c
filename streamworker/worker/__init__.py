"""The Kafka edge: everything that knows about Faust, aiokafka and the worker process.

Kept free of imports so that `streamworker.worker.topics` (used by `doctor`) does not
pull in Faust. The map:

- `app`: the Faust app and its agent (decode → `Pipeline.handle` → `Delivery` → ack)
- `delivery`: exactly-once publishing, marks, in-order acks, commits, key locks
- `faust_port`: `delivery`'s port on Faust; `lifecycle`: signals, drain, restart in place
- `resources`, `runtime`: long-lived resources; events in flight; restart requests
- `web`, `health`: `/health`, `/ready`, `/metrics`
- `acks`, `marks`, `commits`, `ledger`, `recovery`, `kafka_records`, `faust_sensor`,
  `taskdump`, `topics`: the pieces `app` and `delivery` are built from
"""
