#!/usr/bin/env python3
"""Thread-by-thread emulation of kernels/conv2d.cu version 3 (conv2d_tensor_core), for machines without a GPU.

Mirrors the kernel's index arithmetic line for line — weight chunk and im2col staging into double-buffered
shared tiles, the fragment loads of each lane, and the epilogue's (channel, pixel) mapping — and replaces
mma.sync.m16n8k16 by its definition using the PTX ISA's fragment layouts ("Matrix Fragments for mma.m16n8k16
with floating point type"). Checks that every output is written exactly once and equals a direct convolution of
the fp16-rounded inputs, on shapes with partial tiles, conv_in's padded reduction, stride 2 and 1×1 / 5×5 kernels.
What it cannot check: the hardware itself (register allocation, the real mma, memory ordering). Keep it in step
with the kernel when the kernel changes. Run by TensorCoreEmulationTests; needs numpy.
"""
import numpy as np
BM = BN = 64
BK = 32
LD = BK + 8
THREADS = 128
A_CHUNKS = BM * BK // 8 // THREADS
B_PAIRS = BK // 2 // (THREADS // BN)

def conv_ref(x, w, b, stride, pb, pe):
    n,cin,h,wd = x.shape; cout,_,k,_ = w.shape
    xp = np.pad(x, ((0,0),(0,0),(pb,pe),(pb,pe)))
    ho=(h+pb+pe-k)//stride+1; wo=(wd+pb+pe-k)//stride+1
    y=np.zeros((n,cout,ho,wo))
    for ky in range(k):
        for kx in range(k):
            patch = xp[:,:,ky:ky+stride*ho:stride, kx:kx+stride*wo:stride]
            y += np.einsum('nchw,oc->nohw', patch, w[:,:,ky,kx])
    return y + b[None,:,None,None]

def emulate(x, w, b, stride, pad, pe):
    n,cin,h,wd = x.shape; cout,_,ks,_ = w.shape
    taps=ks*ks; depth=cin*taps; kpad=(depth+31)//32*32
    ho=(h+pad+pe-ks)//stride+1; wo=(wd+pad+pe-ks)//stride+1
    pixels=ho*wo; columns=n*pixels
    wh=np.zeros((cout,kpad),np.float16); wh[:,:depth]=w.reshape(cout,depth).astype(np.float16)
    xf=x.reshape(-1)
    y=np.full(n*cout*pixels, np.nan)
    for by in range((cout+BM-1)//BM):
      for bx in range((columns+BN-1)//BN):
        co0=by*BM; p0=bx*BN
        a_tile=np.zeros((2,BM,LD),np.float16); b_tile=np.zeros((2,BN,LD),np.float16)
        def im2col(tid,k):
            load_col=tid%BN; my_pixel=p0+load_col
            if k>=depth or my_pixel>=columns: return 0.0
            pn=my_pixel//pixels; prem=my_pixel-pn*pixels
            iy0=(prem//wo)*stride-pad; ix0=(prem%wo)*stride-pad
            ci=k//taps; tap=k-ci*taps; ky=tap//ks; iy=iy0+ky; ix=ix0+(tap-ky*ks)
            if 0<=iy<h and 0<=ix<wd: return xf[((pn*cin+ci)*h+iy)*wd+ix]
            return 0.0
        def fetch(k0):
            st=[]
            for tid in range(THREADS):
                a=[]
                for c in range(A_CHUNKS):
                    chunk=tid+c*THREADS; co=co0+chunk//(BK//8); kc=(chunk%(BK//8))*8
                    a.append(wh[co,k0+kc:k0+kc+8].copy() if co<cout else np.zeros(8,np.float16))
                bb=[]
                first_pair=tid//BN
                for r in range(B_PAIRS):
                    k=k0+2*(first_pair+2*r)
                    bb.append((np.float16(im2col(tid,k)),np.float16(im2col(tid,k+1))))
                st.append((a,bb))
            return st
        def stage(buf, st):
            for tid,(a,bb) in enumerate(st):
                for c in range(A_CHUNKS):
                    chunk=tid+c*THREADS; a_tile[buf,chunk//(BK//8),(chunk%(BK//8))*8:(chunk%(BK//8))*8+8]=a[c]
                first_pair=tid//BN; load_col=tid%BN
                for r in range(B_PAIRS):
                    kk=2*(first_pair+2*r); b_tile[buf,load_col,kk]=bb[r][0]; b_tile[buf,load_col,kk+1]=bb[r][1]
        acc=np.zeros((4,32,2,4,4))  # warp, lane, mi, ni, e
        stage(0,fetch(0)); buf=0
        for k0 in range(0,depth,BK):
            more=k0+BK<depth
            nxt=fetch(k0+BK) if more else None
            for kk in range(0,BK,16):
                for warp in range(4):
                    wm=(warp//2)*32; wn=(warp%2)*32
                    # gather fragments per lane exactly as the kernel, then apply mma semantics
                    A=np.zeros((2,16,16)); B=np.zeros((4,16,8))
                    for lane in range(32):
                        g=lane//4; t=lane%4
                        for mi in range(2):
                            row=wm+mi*16+g
                            regs=[a_tile[buf,row,kk+2*t:kk+2*t+2], a_tile[buf,row+8,kk+2*t:kk+2*t+2],
                                  a_tile[buf,row,kk+2*t+8:kk+2*t+10], a_tile[buf,row+8,kk+2*t+8:kk+2*t+10]]
                            # PTX layout: a0,a1 (g, 2t..) a2,a3 (g+8, 2t..) a4,a5 (g, 2t+8..) a6,a7 (g+8, 2t+8..)
                            A[mi,g,2*t:2*t+2]=regs[0]; A[mi,g+8,2*t:2*t+2]=regs[1]
                            A[mi,g,2*t+8:2*t+10]=regs[2]; A[mi,g+8,2*t+8:2*t+10]=regs[3]
                        for ni in range(4):
                            col=wn+ni*8+g
                            B[ni,2*t:2*t+2,g]=b_tile[buf,col,kk+2*t:kk+2*t+2]
                            B[ni,2*t+8:2*t+10,g]=b_tile[buf,col,kk+2*t+8:kk+2*t+10]
                    for mi in range(2):
                        for ni in range(4):
                            D=A[mi]@B[ni]  # 16x8
                            for lane in range(32):
                                g=lane//4; t=lane%4
                                acc[warp,lane,mi,ni,0]+=D[g,2*t]; acc[warp,lane,mi,ni,1]+=D[g,2*t+1]
                                acc[warp,lane,mi,ni,2]+=D[g+8,2*t]; acc[warp,lane,mi,ni,3]+=D[g+8,2*t+1]
            if more: stage(buf^1,nxt)
            buf^=1
        for warp in range(4):
            wm=(warp//2)*32; wn=(warp%2)*32
            for lane in range(32):
                g=lane//4; t=lane%4
                for mi in range(2):
                    for ni in range(4):
                        for e in range(4):
                            co=co0+wm+mi*16+g+(e//2)*8; p=p0+wn+ni*8+2*t+(e%2)
                            if co>=cout or p>=columns: continue
                            nn=p//pixels; idx=(nn*cout+co)*pixels+(p-nn*pixels)
                            assert np.isnan(y[idx]); y[idx]=acc[warp,lane,mi,ni,e]+b[co]
    assert not np.isnan(y).any()
    return y.reshape(n,cout,ho,wo)


def main():
    rng = np.random.default_rng(0)
    cases = [(3, 32, 3, 1, 1, 1, 8, 2), (64, 70, 3, 1, 1, 1, 9, 1), (32, 32, 3, 2, 0, 1, 8, 2), (96, 48, 1, 1, 0, 0, 5, 3),
             (8, 16, 5, 1, 2, 2, 7, 1)]
    for (cin, cout, k, s, pb, pe, size, n) in cases:
        x = rng.uniform(-1, 1, (n, cin, size, size))
        w = rng.uniform(-1, 1, (cout, cin, k, k)) * 0.2
        b = rng.uniform(-1, 1, cout)
        got = emulate(x, w, b, s, pb, pe)
        rounded = conv_ref(x.astype(np.float16).astype(np.float64), w.astype(np.float16).astype(np.float64), b, s, pb, pe)
        exact = conv_ref(x, w, b, s, pb, pe)
        mapping = np.abs(got - rounded).max()
        half_error = np.linalg.norm(got - exact) / np.linalg.norm(exact)
        print(f"{(cin, cout, k, s, pb, pe, size, n)}: max |emulated - fp16-input reference| {mapping:.1e}, "
              f"normalised error vs float64 {half_error:.1e}")
        assert mapping < 1e-9, "the kernel's index mapping does not compute this convolution"
        assert half_error < 3e-3, "fp16 rounding error above the tolerance the GPU tests use"
    print("OK")


if __name__ == "__main__":
    main()
