"""The run folder's formats, shared by running and reporting and importing neither: stage keys,
atomic writes, checksummed map shards (files), code versions computed from the import closure of a
stage's modules (code), the run folder's top-level files and their readers (runfolder), and the names of
trained model instances (instances: `resnet50@s1` of train.seeds).
Importers name the submodule (`from benchmark.store.files import write_text`): this file imports
nothing, so a stage's code closure holds only the parts of the store it uses."""
