"""Noise-reduction settings vs WER: LibriVox clips + a noise recording at 5 dB SNR, Whisper in-process.

Usage: ~/.avatar/venv/bin/python scripts/denoise_experiment.py NOISE.wav
"""
import sys, subprocess, numpy as np, re
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
from pathlib import Path
from avatar_engine.asr import ASREngine, SAMPLE_RATE
import noisereduce as nr
def load(p):
    pcm=subprocess.run(["ffmpeg","-v","error","-i",p,"-ac","1","-ar","16000","-f","s16le","-"],capture_output=True).stdout
    return np.frombuffer(pcm,np.int16).astype(np.float32)/32768
d="/usr/share/pocketsphinx/test/data/librivox/"
lines=open(d+"transcription").read().strip().split("\n")
clips=[(d+re.search(r"\((.*)\)",l).group(1)+".wav", re.sub(r"</?s>|\(.*\)","",l).strip()) for l in lines]
noise=load(sys.argv[1])
e=ASREngine(Path.home()/".avatar/models/whisper-base", cpu_threads=1); e.load()
def words(t): return re.sub(r"[^a-z0-9' ]"," ",t.lower()).split()
def ed(a,b):
    p=list(range(len(b)+1))
    for i in range(1,len(a)+1):
        c=[i]+[0]*len(b)
        for j in range(1,len(b)+1): c[j]=min(p[j]+1,c[j-1]+1,p[j-1]+(a[i-1]!=b[j-1]))
        p=c
    return p[-1]
configs={"off":None,
 "nonstat":dict(stationary=False),
 "stat":dict(stationary=True),
 "nonstat.8":dict(stationary=False,prop_decrease=0.8),
 "nonstat.65":dict(stationary=False,prop_decrease=0.65),
 "nonstat.5":dict(stationary=False,prop_decrease=0.5),
 "stat.8":dict(stationary=True,prop_decrease=0.8),
 "stat.5":dict(stationary=True,prop_decrease=0.5),
}
res={k:[0,0] for k in configs}
for path,text in clips:
    s=load(path); bed=np.resize(noise,len(s))
    g=np.sqrt((s**2).mean())/np.sqrt((bed**2).mean())/10**(5/20)
    m=(s+g*bed).astype(np.float32)
    for k,kw in configs.items():
        a=m if kw is None else np.asarray(nr.reduce_noise(y=m,sr=16000,n_jobs=1,**kw),dtype=np.float32)
        h=e._run(a,language="en",temperature=None,prompt=None)["text"]
        res[k][0]+=ed(words(text),words(h)); res[k][1]+=len(words(text))
for k,(a,b) in res.items(): print(k, round(a/b*100,1))
