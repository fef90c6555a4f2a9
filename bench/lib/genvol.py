# Generates a dump of a volume of N inodes for the bench scripts: about sqrt(N) directories
# of files of 16 bytes, each one slice whose block is written into the bucket directory.
# Usage: python3 genvol.py EMPTY_DUMP OUT_DUMP N BUCKET_VOLUME_DIR
import json, os, sys
src, dst, n, bucket = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
head = json.load(open(src))
dirs = max(1, int(n ** 0.5))
per = max(1, (n - 1 - dirs) // dirs)
t = 1764633600
size = 16
def attr(ino, typ, mode, length=0, nlink=1):
    return ('{"inode":%d,"type":"%s","mode":%d,"uid":0,"gid":0,"atime":%d,"mtime":%d,'
            '"ctime":%d,"nlink":%d,"length":%d}' % (ino, typ, mode, t, t, t, nlink, length))
with open(dst, "w") as w:
    w.write('{\n  "Setting": %s,\n' % json.dumps(head["Setting"]))
    total = 1 + dirs + dirs * per
    w.write('  "Counters": {"usedSpace":0,"usedInodes":%d,"nextInodes":%d,"nextChunk":%d,'
            '"nextSession":1,"nextTrash":0},\n' % (total - 1, total + 1, dirs * per + 1))
    w.write('  "Sustained": [],\n  "DelFiles": [],\n  "FSTree": {\n    "attr": %s,\n'
            '    "entries": {' % attr(1, "directory", 511, nlink=2 + dirs))
    ino, chunk = 2, 1
    for d in range(dirs):
        w.write('%s\n      "d%d": {\n        "attr": %s,\n        "entries": {'
                % ("," if d else "", d, attr(ino, "directory", 493, nlink=2)))
        ino += 1
        for f in range(per):
            w.write('%s\n          "f%d": {\n            "attr": %s,\n'
                    '            "chunks": [{"index":0,"slices":[{"id":%d,"size":%d,"len":%d}]}]\n          }'
                    % ("," if f else "", f, attr(ino, "regular", 420, length=size), chunk, size, size))
            d2 = os.path.join(bucket, "chunks", str(chunk // 1000000), str(chunk // 1000))
            os.makedirs(d2, exist_ok=True)
            with open(os.path.join(d2, "%d_0_%d" % (chunk, size)), "wb") as b:
                b.write(b"x" * size)
            ino += 1
            chunk += 1
        w.write('\n        }\n      }')
    w.write('\n    }\n  }\n}\n')
print("generated %d inodes (%d directories of %d files) and their blocks" % (ino - 1, dirs, per), file=sys.stderr)
