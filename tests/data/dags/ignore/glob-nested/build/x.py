# glob-nested/build/x.py
