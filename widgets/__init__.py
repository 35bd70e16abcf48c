"""The workbench widgets' front-end: anywidget modules and styles, and the JupyterLab / Notebook 7 extension.

Shipped inside the wheel as the data package `mlops_wb.frontend`; `mlops_wb.widgets.base.asset` reads its files.
"""
