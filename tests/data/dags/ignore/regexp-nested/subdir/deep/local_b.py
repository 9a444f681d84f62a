# regexp-nested/subdir/deep/local_b.py
