# glob-nested/nested/deep/keep.py
