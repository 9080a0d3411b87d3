/*
Package he is fheserve's CKKS engine on top of Lattigo v6: parameter sets
and their security check, the versioned wire format for ciphertexts and
evaluation keys, and the server-side sanitization of results. The client
half (key generation, encryption, decryption) lives in he/client, the only
package that holds a secret key.

# Wire format, version 1

Every object fheserve exchanges with a client (input ciphertexts, results,
evaluation keys) is encoded in this format, never with Lattigo's own
marshalling: Lattigo's decoders are not safe on untrusted bytes (they recurse
without end on truncated input and allocate whatever a corrupted length
asks). The decoders here read a fixed-size header, check it against the
parameters and the caller's limits, and only then allocate objects of the
size the parameters imply and fill them in; the payload size follows exactly
from the header and the parameters, and trailing bytes are refused.

Conventions. Integers are big-endian. N = 2^logN is the ring degree; q_i are
the primes of Q (q_0 first) and p_j those of P. A "row" is the N residues of
a polynomial modulo one prime, written at b = ceil(log2 q) bits per residue
(bitLen(q-1)): the N*b bits form one little-endian bit stream (residue k
occupies bits k*b .. k*b+b-1, least significant bit first; bit i of the
stream is bit i%8 of byte i/8), so a row takes N*b/8 bytes. On decode every
residue is checked to be below its prime. A polynomial over Q at level l is
rows q_0..q_l; over QP it is rows q_0..q_L then p_0..p_K. The fingerprint is
the 32-byte SHA-256 that Fingerprint returns in hex; objects made for other
parameters are refused.

Polynomials travel in the form Lattigo holds them: ciphertexts in the NTT
domain, not in Montgomery form (the form Lattigo's CKKS evaluator works on;
version 1 accepts no other); keys in the NTT domain and in Montgomery form.
Results are the exception: they travel in the coefficient domain (see kind 3).

A scale is 18 bytes: a 2-byte exponent E in 1..1024 and a 16-byte mantissa M
with its top bit set, for the value M * 2^(E-128), which lies in
[2^(E-1), 2^E). This holds Lattigo's 128-bit scales exactly.

# Ciphertext batches ("FHEC")

Header, 44 bytes:

	off len field
	  0   4 magic "FHEC"
	  4   1 format version, 1
	  5   1 kind: 1 full, 2 seeded, 3 result
	  6   1 logN
	  7   1 kind 3: bits, the width of a result residue (1..bitLen(q_0-1)); else 0
	  8  32 parameter fingerprint
	 40   4 count of ciphertexts, at least 1

Then count records. A record header is 25 bytes:

	off len field
	  0   1 level l (the ciphertext has primes q_0..q_l); 0 for kind 3
	  1   1 degree, 1
	  2   1 flags: bit 0 IsNTT (must be 1), bit 1 IsMontgomery (must be 0),
	          bit 2 IsBatched (slot encoding; 0 for coefficient encoding),
	          bit 3 IsBitReversed; other bits 0
	  3   1 log2 of the rows of the slot matrix (LogDimensions.Rows, 0)
	  4   1 log2 of its columns (LogDimensions.Cols, at most logN-1)
	  5   2 reserved, 0
	  7  18 scale

and the payload follows:

  - kind 1 (full): c0 then c1, each a polynomial over Q at level l.
  - kind 2 (seeded): c0, a polynomial over Q at level l, then a 32-byte seed.
    c1 is the uniform polynomial the seed expands to: a BLAKE2b XOF keyed
    with the seed (Lattigo's sampling.KeyedPRNG) feeds Lattigo's uniform
    sampler (ring.UniformSampler) for rows q_0..q_l in order; the result is
    read as an NTT-domain polynomial. The client makes c1 this way when it
    encrypts (c0 = -c1*s + e + m), so an upload costs about one polynomial.
    (xof.go computes the same bytes eight XOF blocks at a time on AVX-512,
    and readUniform reads them as the sampler does.)
  - kind 3 (result): level 0 only. c0 then c1, each one row in the
    coefficient domain (after the inverse NTT), every residue c switched to
    c' = round(c * 2^bits / q_0) mod 2^bits and written at bits bits. The
    decoder maps c' back to round(c' * q_0 / 2^bits) and returns to the NTT
    domain. This adds a rounding error to the decryption; ResultErrorStd
    gives its size. At logN=13 and bits=31 a result is 63.5 KB.

CiphertextsSize and ResultSize give the exact size of a batch.

# Sealed weights

A sealed model's weights (he/client.Seal, he/server.PrepareSealed) travel
as a ciphertext batch of kind 1: public-key encryptions have no seed, so
both polynomials of every ciphertext are sent. What the batch holds is fixed
by the plan before a byte arrives (SealedLayout: per linear step its
diagonals, giant steps then baby steps ascending, or its weight
polynomial, then its bias): UnmarshalSealed takes the list of levels from
the layout, refuses another count or any record at another level, and
allocates nothing beyond it; PrepareSealed then checks every scale and
encoding against the layout. SealedSize gives the exact size.

# Evaluation key sets ("FHEK")

Header, 48 bytes:

	off len field
	  0   4 magic "FHEK"
	  4   1 format version, 1
	  5   1 kind, 1 (evaluation key set) or 2 (derived key set)
	  6   1 logN
	  7   1 flags: bit 0 a relinearization key follows; bit 1 each
	        evaluation key carries its level; other bits 0
	  8  32 parameter fingerprint
	 40   1 top level in Q, L = number of Q primes - 1
	 41   1 key level in P, K = number of P primes - 1
	 42   1 base-two decomposition, 0 (none)
	 43   1 reserved, 0
	 44   4 count of Galois keys (kind 2: of master keys)

Then:

  - the public key: a 32-byte seed, then b, a polynomial over QP. The key is
    (b, a) with a the seed's expansion over rows q_0..q_L, p_0..p_K, and
    b = -a*s + e (Montgomery form).
  - if flag bit 0, the relinearization key: with flag bit 1 its level l
    (1 byte, 0..L; without the flag l = L), a 32-byte seed, then the b part
    of each of its R gadget entries, in order, each a polynomial over
    q_0..q_l and P; R = ceil((l+1)/(K+1)). The a parts are the seed's
    expansion at that level, entry after entry, as Lattigo's
    EvaluationKey.Expand reads them.
  - each Galois key, in strictly increasing order of Galois element: the
    element (8 bytes; odd, 3..2N-1), then (flag bit 1) its level, a seed
    and R b parts as above.

A key at level l switches ciphertexts at levels 0..l: a plan gives each key
the highest level at which it uses it (plan.KeyLevels), and a key used only
in later layers is a fraction of a top-level one. A writer sets flag bit 1
only when some key is below the top level, so key sets of plans without
levels are written as before. Given the keys wanted (KeyLimits.Keys), the
decoder refuses a key of another element or level before allocating it.

Only the b parts travel: keys are half the size of Lattigo's. EvalKeysSize
gives the exact size of a key set.

A derived key set (kind 2, plans compiled with --keys derived, hier.go)
carries master keys instead of Galois keys: after the header, the master
prime P' (8 bytes, the one MasterParams(params) gives, refused otherwise);
then the public key and the relinearization key as above; then count
master keys, each as a Galois key above but always with its level, over
the master parameters: ring Q made of p_0..p_K then q_0..q_L, special
prime P'. A master key at level m has its rows over the first m+1 primes of
that Q and P', one decomposition row per prime, each split into
ceil(bits(q)/w) entries when MasterDecomposition gives a base-two
decomposition of w bits (when P' is smaller than a prime of QP). Given the
keys wanted, the decoder allows only the masters PlanDerivation lists, at
their levels, and then derives the plan's Galois keys (DeriveGaloisKeys).

Beyond the format, the decoder refuses key material that no honest key
generator makes: a b part is -a*s + e (plus the gadget term), pseudo-random
modulo each prime, so a row of it (its N residues modulo one prime) of which
more than half lies within q/2^10 of 0 or repeats its predecessor, in the
NTT domain (out of Montgomery form) or in the coefficient domain, or equals
plus or minus the a part, is refused with EINVALID. This refuses a zero b
part, a zero secret key (b = e) and constant parts; an honest key set fails
with probability below 2^-14000. It cannot refuse a b part with an
arbitrary polynomial added, which is as pseudo-random as an honest one;
docs/security.md ("Malicious keys and inputs") says what that leaves open.

# Secret keys

The client's secret key has its own format, for the user's local storage
only (see he/client): "FHES", version 1, kind 1, logN, a zero byte, the
fingerprint, then the N ternary coefficients at 2 bits each.
*/
package he
