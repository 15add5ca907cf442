"""The audit log: who read or changed a student's data, or a key or an account, when and from where.

Other packages call `bedel.audit.service.record` for each read or change. The log has no update
or delete route; a student's export and erasure reach their entries as one of the holdings of
`bedel.privacy`.
"""
