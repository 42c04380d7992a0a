"""Site code: a plugin's or theme's repository fetched at a ref, built on the control side, and its releases
(`releases`, pure: naming, which to keep, where a rollback goes)."""
