"""How batches move between the two networks over time: streams and sequence numbers (the
ledger), acks, intake (accept, duplicate or quarantine), feeding records into batches, bulk
import, the sender's kept copies (archive), resend and re-export, writing behind the
reader, and upkeep.

Entry points: `exchange` (export into batches, import the inbox), `acks`, `resend`,
`reexport` and `upkeep`; `config` builds their settings from a network's. It may import
`transfer.format`, never `transfer.operator`.
"""
