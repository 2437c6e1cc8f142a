"""Names a spec may not give a hyperparameter, state or name flag because the MXNet-style
optimizer classes use them: a hyperparameter becomes a property of its class, so it must not
hide `update`, `step`, `lr`, ... (names starting with `_` are refused anyway; `train`,
`eval` and `mode`, the methods of rules with [modes], are the loader's MODE_METHODS). The
loader reads this table; tests/test_layers.py keeps it equal to the public attributes of
the classes the runtime builds."""

CLASS_ATTRIBUTES = frozenset({
    "SPEC", "aggregate_num", "begin_num_update", "check_parameter", "clip_gradient", "config",
    "create_optimizer", "create_state", "create_state_multi_precision", "engine", "flavor",
    "from_config", "fused_step", "group_states", "hyperparameters", "idx2name", "lazy_update", "learning_rate",
    "lr", "lr_mult", "lr_scheduler", "min_8bit_size", "multi_precision", "num_update", "param_dict",
    "register", "rescale_grad", "set_learning_rate", "set_lr_mult", "set_lr_scale", "set_wd_mult",
    "state_storage", "step", "sym_info", "update", "update_multi_precision", "use_fused_step", "wd",
    "wd_mult",
})
