"""The audit log: who read or changed a student's data, or a key or an account, when and from where.

Other packages call `bedel.audit.service`: `record` for each read or change, `entries_about`
for a student's export, `forget_student` for an erasure. The log has no update or delete route.
"""
