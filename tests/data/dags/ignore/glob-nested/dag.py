# glob-nested/dag.py
