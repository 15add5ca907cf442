from tests.users.hashing import fast_password_hashing  # noqa: F401  (applies to every users test)
