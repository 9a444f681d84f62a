# glob-nested/sub/build/y.py
