#!/usr/bin/env python3
"""Writes a magnetico database (schema version 3, as magnetico lays it out, without its FTS
index) of N generated torrents, for timing `dhtkit import --from magnetico`:
`python3 gen_magnetico.py OUT.sqlite3 N`. Deterministic (seeded)."""
import sqlite3, random, sys, os
path=sys.argv[1]; n=int(sys.argv[2])
if os.path.exists(path): os.remove(path)
c=sqlite3.connect(path)
c.executescript("""
PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
CREATE TABLE torrents (id INTEGER PRIMARY KEY, info_hash BLOB NOT NULL UNIQUE, name TEXT NOT NULL,
 total_size INTEGER NOT NULL CHECK(total_size > 0), discovered_on INTEGER NOT NULL CHECK(discovered_on > 0),
 updated_on INTEGER, n_seeders INTEGER, n_leechers INTEGER, modified_on INTEGER);
CREATE TABLE files (id INTEGER PRIMARY KEY, torrent_id INTEGER REFERENCES torrents ON DELETE CASCADE ON UPDATE RESTRICT,
 size INTEGER NOT NULL, path TEXT NOT NULL, is_readme INTEGER, content TEXT);
PRAGMA user_version=3;
""")
r=random.Random(7)
words=["aurora","kestrel","meadow","nimbus","orchid","quartz","raven","basalt","cobalt","dahlia","ember","fjord"]
tags=["1080p","720p","x264","x265","WEB-DL","BluRay","FLAC","2021","2022","2023"]
tid=0
for b in range(0,n,10000):
    T=[];F=[]
    for i in range(b,min(n,b+10000)):
        tid+=1
        name=".".join(r.choice(words).title() for _ in range(3))+"."+r.choice(tags)
        nf=1 if r.random()<0.55 else r.randint(2,30)
        sizes=[r.randint(1000,2_000_000_000//nf) for _ in range(nf)]
        d=1_600_000_000+i*30
        sw=i%3==0
        T.append((tid, r.randbytes(20), name, sum(sizes), d, d+3600 if sw else None, r.randint(0,500) if sw else None, r.randint(0,100) if sw else None, d+60))
        for k,s in enumerate(sizes): F.append((tid,s,f"{name}/part {k:03}.mkv"))
    c.executemany("INSERT INTO torrents VALUES (?,?,?,?,?,?,?,?,?)",T)
    c.executemany("INSERT INTO files (torrent_id,size,path) VALUES (?,?,?)",F)
    c.commit()
print(c.execute("select count(*) from torrents").fetchone(), c.execute("select count(*) from files").fetchone())
