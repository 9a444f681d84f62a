# regexp-nested/subdir/rel_only.py
