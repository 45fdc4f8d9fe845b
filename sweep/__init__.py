"""sweep: map where deep networks explode or vanish."""

import jax as _jax

# Log-scales are accumulated in float64 so depth 10,000 is as exact as depth 10; the
# networks themselves run in the spec's dtype, which every array names explicitly.
_jax.config.update("jax_enable_x64", True)
