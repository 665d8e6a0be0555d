"""What the app did during a test, kept cheaply and shown when the test fails.

``record`` captures requests, server exceptions and SQL; ``redact`` hides secrets;
``render`` and ``reproduce`` turn a recording into the report; ``artifact`` writes
trace files; ``notes`` explains known errors; ``queries`` counts statements.
"""
