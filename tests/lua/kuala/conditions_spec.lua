-- kuala.conditions: apimachinery's SetStatusCondition semantics.
local conditions = require("kuala.conditions")

local function obj(gen)
  return { apiVersion = "demo.kuala.dev/v1", kind = "App",
           metadata = { name = "a", generation = gen } }
end

describe("kuala.conditions", function()
  it("adds a condition with lastTransitionTime and observedGeneration", function()
    local o = obj(3)
    assert.is_true(conditions.set(o, { type = "Ready", status = "False", reason = "Waiting",
                                       message = "0/3" }))
    local c = conditions.get(o, "Ready")
    assert.same({ "Ready", "False", "Waiting", "0/3", 3 },
                { c.type, c.status, c.reason, c.message, c.observedGeneration })
    assert.truthy(c.lastTransitionTime:match("^%d+%-%d+%-%d+T%d+:%d+:%d+Z$"))
    assert.is_false(conditions.is_true(o, "Ready"))
  end)

  it("changes lastTransitionTime only when the status changes", function()
    local st = {}
    conditions.set(st, { type = "Ready", status = "False", reason = "Waiting",
                         lastTransitionTime = "2020-01-01T00:00:00Z" })
    -- same status, new reason and message: the transition time stays
    assert.is_true(conditions.set(st, { type = "Ready", status = "False", reason = "Pulling",
                                        message = "image" }))
    assert.equal("2020-01-01T00:00:00Z", conditions.get(st, "Ready").lastTransitionTime)
    assert.equal("Pulling", conditions.get(st, "Ready").reason)
    -- nothing changed: reported as such
    assert.is_false(conditions.set(st, { type = "Ready", status = "False", reason = "Pulling",
                                         message = "image" }))
    -- new status: new transition time
    conditions.set(st, { type = "Ready", status = "True", reason = "Available" })
    assert.are_not.equal("2020-01-01T00:00:00Z", conditions.get(st, "Ready").lastTransitionTime)
    assert.is_true(conditions.is_true(st, "Ready"))
    assert.equal(1, #st.conditions)
  end)

  it("updates observedGeneration from the object and removes conditions", function()
    local o = obj(1)
    conditions.set(o, { type = "Ready", status = "True", reason = "Ok" })
    o.metadata.generation = 2
    assert.is_true(conditions.set(o, { type = "Ready", status = "True", reason = "Ok" }))
    assert.equal(2, conditions.get(o, "Ready").observedGeneration)
    assert.is_true(conditions.remove(o, "Ready"))
    assert.is_nil(conditions.get(o, "Ready"))
    assert.is_false(conditions.remove(o, "Ready"))
  end)

  it("refuses bad status values and reasons", function()
    assert.has_error(function()
      conditions.set({}, { type = "R", status = "yes", reason = "X" })
    end)
    assert.has_error(function() conditions.set({}, { type = "R", status = "True" }) end)
    assert.has_error(function() conditions.set({}, { status = "True", reason = "X" }) end)
  end)
end)
