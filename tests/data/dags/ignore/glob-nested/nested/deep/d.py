# glob-nested/nested/deep/d.py
