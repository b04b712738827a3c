"""What a person carrying files between the networks uses: carry, status, verifying many
files, quarantine handling (inspect, release, delete), the kept archive's batch reports,
the operator HTTP routes (`api`) and the `ferry transfer` commands (`cli`).

It may import `transfer.format` and `transfer.protocol`.
"""
