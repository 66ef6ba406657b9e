import random, subprocess
random.seed(7202)
specs = [
 ("+:hVT:", "help:0:104,version:0:86,trace:1:84"),
 (":F:b:f:ho:qu", "help:0:104,object:1:258"),
 (":f:hU", "help:0:104,format:1:102,output:1:256,backing-chain:0:257,object:1:258,image-opts:0:259,force-share:0:85"),
 (":f:s:l:hU", "help:0:104,format:1:102,output:1:256,object:1:258,image-opts:0:259,force-share:0:85,start-offset:1:115,max-length:1:108"),
 (":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:", "help:0:104,object:1:258,image-opts:0:259,force-share:0:85,target-image-opts:0:263,salvage:0:267,target-is-zero:0:268,bitmaps:0:275,skip-broken-bitmaps:0:277"),
 ("hf:O:o:l:U", "help:0:104,image-opts:0:259,object:1:258,output:1:256,size:1:264,force-share:0:85"),
]
pool = ["-f","raw","-fraw","--format","--format=raw","--form","--f","--fo","--for","-Uq","-hU","--","-","a","b","c","--output","--out=json","--o","--ob","--b","--backing-chain=1","--backing-chain","-o","x=y","-z","--zzz","-qo","--image-opts","--image","--obj","--object=secret","-l","--start-offset","--s=3","--max-length=5","-s1","-q","-u","-b","-F","qcow2","--help","--he","-V","--version","-T","foo","--trace=x","--t","-O","-Bx","-cp","--target","--sk","--size","--si","--size=1","-U","--force","--force-share=1","-x",""]
lines=[]
for spec in specs:
    for n in range(150):
        k = random.randint(0,7)
        args = [random.choice(pool) for _ in range(k)]
        if "" in args: args=[a for a in args if a!=""] + [""]
        if args == [""]: args = ["", "a"]
        out = subprocess.run(["./getopt-harness", spec[0], spec[1], "prog"] + args, capture_output=True, text=True).stdout.rstrip("\n")
        lines.append("\t".join([spec[0], spec[1], "\x1f".join(args), out]))
open("../getopt-glibc.tsv","w").write("# optstring\tlong options (name:has_arg:val)\targv after argv[0], separated by U+001F\tglibc getopt_long events: c|optind|optarg|argv[optind-1]; then END|optind; then the permuted argv\n" + "\n".join(lines)+"\n")
print(len(lines))
