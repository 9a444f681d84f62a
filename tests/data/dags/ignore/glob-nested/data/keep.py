# glob-nested/data/keep.py
