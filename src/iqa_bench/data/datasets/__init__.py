"""One module per public IQA dataset, each reading the files as its official download unpacks them.

See `iqa_bench.data.registry` for the name -> class table and `data/README.md` for the expected layouts.
"""
