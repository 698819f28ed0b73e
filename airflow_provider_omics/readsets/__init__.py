"""The read set request, beneath the operators: its identity (:mod:`.identity`) and the once-only announcement of
a verified read set (:mod:`.announce`). Callable without a DAG."""
