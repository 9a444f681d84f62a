# regexp-nested/subdir/local_a.py
