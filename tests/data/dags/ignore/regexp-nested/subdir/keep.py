# regexp-nested/subdir/keep.py
