# tflint with only the bundled terraform ruleset: no plugin is downloaded, so
# it runs offline. Used by infra/ for both modules and both examples.
config {
  call_module_type = "none"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
