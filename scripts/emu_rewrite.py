#!/usr/bin/env python3
"""Turns a kernels/cuda .cu file into C++ for the CUDA emulator (kernels/emu/simt.h).

    emu_rewrite.py IN.cu OUT.cpp

Three rewrites, nothing else changes (line numbers stay, and a #line directive points errors at IN.cu):
  kernel<T><<<grid, block, smem, stream>>>(args)  ->  ::siam::emu::launcher(kernel<T>, "kernel<T>", grid, block,
                                                        smem, stream)(args)
  extern __shared__ [__align__(n)] T name[];       ->  T* name = ::siam::emu::dynamic_shared<T>();
  __shared__ T a[..], b[..];                       ->  the same, then ::siam::emu::shared_region(&a, sizeof(a)); and
                                                        for b: the emulator fills them with 0xff before each block
                                                        (uninitialized shared memory reads as NaN, as garbage would)
Headers (.cuh) get the same treatment.
A launch whose kernel expression cannot be found is an error (the build stops), never a silent skip.
"""
import os
import re
import sys


def kernel_start(s, i):
    """Index where the kernel expression ending just before s[i] ('<<<') begins."""
    j = i
    while j > 0 and s[j - 1].isspace():
        j -= 1
    end = j
    while True:
        if j > 0 and s[j - 1] == '>':  # template arguments: back to the matching '<'
            depth, k = 0, j - 1
            while k >= 0:
                if s[k] == '>':
                    depth += 1
                elif s[k] == '<':
                    depth -= 1
                    if depth == 0:
                        break
                k -= 1
            if k < 0:
                raise ValueError('unbalanced template arguments')
            j = k
        k = j
        while k > 0 and (s[k - 1].isalnum() or s[k - 1] == '_'):
            k -= 1
        if k == j:
            raise ValueError('no kernel name')
        j = k
        if s[j - 2:j] == '::':
            j -= 2
            continue
        return j, end


def split_top(text, sep):
    """text split at `sep` characters outside (), [], {} and <>."""
    parts, depth, cur = [], 0, ''
    for ch in text:
        if ch in '([{<':
            depth += 1
        elif ch in ')]}>':
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    parts.append(cur)
    return parts


def register_shared(text, path):
    """After each static __shared__ declaration, the calls that register its variables with the emulator."""
    out, pos = [], 0
    for m in re.finditer(r'__shared__', text):
        i = m.start()
        if i < pos or re.search(r'extern\s+$', text[max(0, i - 20):i]):
            continue
        depth, j = 0, m.end()
        while j < len(text) and not (text[j] == ';' and depth == 0):
            if text[j] in '([{':
                depth += 1
            elif text[j] in ')]}':
                depth -= 1
            j += 1
        if j >= len(text):
            line = text.count('\n', 0, i) + 1
            raise SystemExit(f'{path}:{line}: a __shared__ declaration without its ;')
        decl = text[m.end():j]
        names = []
        for piece in split_top(decl, ','):
            head = piece.split('[', 1)[0].split('=', 1)[0]
            ids = re.findall(r'[A-Za-z_]\w*', head)
            if not ids:
                line = text.count('\n', 0, i) + 1
                raise SystemExit(f'{path}:{line}: cannot name the variable of this __shared__ declaration')
            names.append(ids[-1])
        calls = ''.join(f' ::siam::emu::shared_region(&{n}, sizeof({n}));' for n in names)
        out.append(text[pos:j + 1] + calls)
        pos = j + 1
    out.append(text[pos:])
    return ''.join(out)


def rewrite(text, path):
    out, pos = [], 0
    while True:
        i = text.find('<<<', pos)
        if i < 0:
            break
        close = text.find('>>>', i + 3)
        if close < 0:
            raise SystemExit(f'{path}: a <<< without >>>')
        try:
            start, end = kernel_start(text, i)
        except ValueError as e:
            line = text.count('\n', 0, i) + 1
            raise SystemExit(f'{path}:{line}: cannot find the kernel of this launch ({e})')
        if start < pos:
            raise SystemExit(f'{path}: overlapping launches')
        kernel = text[start:end]
        name = ' '.join(kernel.split()).replace('"', '\\"')
        config = text[i + 3:close]
        out.append(text[pos:start])
        out.append(f'::siam::emu::launcher({kernel}, "{name}", {config})')
        pos = close + 3
    out.append(text[pos:])
    text = ''.join(out)
    text = register_shared(text, path)
    shared = re.compile(r'extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:\s]*?)\s+(\w+)\s*\[\s*\]\s*;')
    return shared.sub(lambda m: f'{m.group(1)}* {m.group(2)} = ::siam::emu::dynamic_shared<{m.group(1)}>();', text)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding='utf-8') as f:
        text = f.read()
    body = rewrite(text, src)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with open(dst, 'w', encoding='utf-8') as f:
        f.write(f'#line 1 "{src}"\n')
        f.write(body)


if __name__ == '__main__':
    main()
