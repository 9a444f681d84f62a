# regexp-nested/subdir/only_from_root.py
