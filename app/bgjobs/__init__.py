"""Jobs: the generic record of long-running work (imports, exports, bulk validation, broadcasts' fan-out).

A ``Job`` row is the truth: workers claim it with a conditional UPDATE, report progress with one UPDATE per
batch (which is also how they notice a cancel), and attach a result file kept by ``storage``."""
