"""The core: what every layer above shares, and nothing of diffjpeg's own.

``geometry`` (sampling rules, component sizes, blocks, MCUs; jdmaster.c),
``precision`` (dtypes and autocast, the float/soft contract's one bound),
``check`` (input checks, in one place), ``modes`` (the forward passes), ``colorspace`` (files'
color spaces; jdapimin.c, jcparam.c), ``scan`` (zigzag and MCU order;
jccoefct.c), ``coefficients`` (:class:`Coefficients`, the container between
encode, decode, files and bits) and ``dispatch`` (the kernel slots through
which a stage meets a backend without importing it).
"""
