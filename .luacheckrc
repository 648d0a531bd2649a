std = "luajit"
max_line_length = 100
files["tests/lua"] = { std = "+busted" }
