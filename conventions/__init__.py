"""Conventions: what the generator and the runtime both read, and import nothing of either.

- `flavors`: the semantics a flavor brings as a whole (MXNet 1.x's weight-decay naming rule)
  and the flavors each API family takes;
- `arguments`: each API family's argument names and defaults for a spec (torch's `lr`,
  `betas`, `eps`, `weight_decay`; MXNet's constructor options) and which flavor's spec a
  params-style class is built from;
- `torch_keywords`: torch.optim's implementation keywords optforge.torch accepts or refuses;
- `api_families`: the constructor lines of every family for a spec (docs pages, `show`);
- `reserved`: names a spec cannot use because the generated code or the classes do.
"""
