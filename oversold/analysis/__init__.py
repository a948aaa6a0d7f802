"""After the checker: metrics, thresholds, and what a run leaves behind to read.

| module | what |
| --- | --- |
| ``metrics`` | soft metrics of a run (latency, throughput, fill rate, bot hold share, ...) |
| ``thresholds`` | thresholds evaluated on the metrics |
| ``evaluation`` | metrics and thresholds of one run, together |
| ``judge`` | the one judging step: check, evaluate, write, exit status |
| ``results`` | ``results.json``, ``junit.xml`` and ``report.html`` written into a run directory |
| ``summary`` / ``junit`` / ``html`` | the verdict as plain text, JUnit XML, a self-contained page |
| ``bench_table`` / ``bench_html`` | the strategy benchmark's table and page |
"""
