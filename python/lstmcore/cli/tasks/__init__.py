"""The command line's tasks, one module each, and the registry that names them.

A task module holds everything the command line knows of its task:

- ``NAME``: the task's name on the command line and in a model file's metadata;
- ``add_parsers(train_tasks, commands)``: adds ``lstmcore train NAME`` (its arguments and
  the ``train_NAME`` function it runs) and any command of its own (charlm: ``generate``);
- ``check_metadata(model, entries)``: what a model file made for the task must hold;
- ``predict(model, args)``: ``lstmcore predict`` on a model of the task (None: it has no
  such use);
- ``inspection_data(model, path, args, targets)``: ``lstmcore inspect``'s DATA prepared as
  in training: ``(x, y, lengths, loss name, description)``.

A new task is a module beside these and one entry below.
"""

from lstmcore.cli.tasks import charlm, classify, forecast

TASKS = {task.NAME: task for task in (forecast, charlm, classify)}

# Every task's metadata check, by name: a model file of any task is checked when read.
METADATA_CHECKS = {name: task.check_metadata for name, task in TASKS.items()}
