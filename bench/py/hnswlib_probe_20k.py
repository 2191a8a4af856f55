# Development probe (issue 3): hnswlib 0.8.0 on the shared 20k set, batch search with one thread.
# Run: bench/.venv/bin/python bench/py/hnswlib_probe_20k.py   (from the repository root)
import os, time
os.environ["OPENBLAS_NUM_THREADS"]="1"
import numpy as np, hnswlib
d="../shared/data/debian-minilm-20k"
X=np.load(d+"/base.f32.npy"); Q=np.load(d+"/queries.f32.npy"); gs=np.load(d+"/gt_cosine_top100_scores.f32.npy")
p=hnswlib.Index(space="ip", dim=384); p.init_index(max_elements=len(X), M=16, ef_construction=200, random_seed=1)
p.set_num_threads(2); p.add_items(X, np.arange(len(X)))
p.set_num_threads(1)
for ef in [16,32,64]:
    p.set_ef(ef); best=0
    for r in range(5):
        t=time.time(); l,dd=p.knn_query(Q,k=10); el=time.time()-t; best=max(best,len(Q)/el)
    s=1-dd; hits=int((s>=gs[:,9:10]-1e-5).sum())
    print("batch ef",ef,"recall",hits/len(Q)/10,"QPS",int(best))
