"""Ferry's side of the gap that both networks share, in three rooms with arrows pointing down.

- `transfer.format`: what a batch file is (pure: anyone can verify a file with it alone).
- `transfer.protocol`: how batches move between the two networks over time.
- `transfer.operator`: what a person carrying files uses.

`transfer.operator` may import `transfer.protocol` and `transfer.format`; `transfer.protocol`
may import `transfer.format`; `transfer.format` imports nothing else of `transfer/`. No
module here imports a network package (`tests/test_import_arrows.py` walks the imports).
"""
