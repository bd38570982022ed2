# Solution: a .wslconfig for "give cached memory back gradually while idle, never more than 8 GB".
my_wslconfig = """
[wsl2]
memory=8GB                  # upper-case unit, binary: 8 GiB

[experimental]
autoMemoryReclaim=gradual   # in [experimental]: under [wsl2] WSL ignores it
"""
exercises.check_wslconfig(my_wslconfig)
