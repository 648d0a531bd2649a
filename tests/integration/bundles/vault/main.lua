-- Integration test bundle (sdk_unwatched_read.sh): a Vault gets a Secret
-- with a generated password. The controller does not watch Secrets and
-- does not declare them in `reads`, so its first ctx:get of a Secret is the
-- first read of that kind: it must wait for the Secret cache instead of
-- answering nil, or every engine restart would replace the password.
local kuala = require("kuala")

kuala.crd {
  group = "e2e.kuala.dev", version = "v1", kind = "Vault",
  scope = "Namespaced", status = true,
  schema = { spec = { user = { type = "string", default = "app" } } },
}

-- Reading Secrets is a cache read (list + watch); apply is a patch.
kuala.permissions { { "v1/Secret", "get,list,watch,patch" } }

kuala.controller {
  name = "vault",
  watch = "e2e.kuala.dev/v1/Vault",
  reconcile = function(ctx, req)
    local vault = ctx:get(req)
    if not vault then return end
    local name = vault.metadata.name .. "-password"
    local secret = ctx:get("v1/Secret", name)
    if not secret then
      -- What an author writes: "absent, so generate it". Apply would
      -- overwrite an existing password if the read lied.
      local _, err = ctx:apply({
        apiVersion = "v1", kind = "Secret", type = "Opaque",
        metadata = { name = name },
        stringData = { user = vault.spec.user, password = kuala.random.token(24) },
      })
      if err then error("apply of the Secret: " .. err) end
      ctx:event(vault, "Normal", "PasswordGenerated", "generated " .. name)
    end
    local _, err = ctx:patch_status(vault, { run = kuala.uuid() })
    if err then error("status: " .. err) end
  end,
}
