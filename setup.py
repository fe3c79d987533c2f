"""The one build step setup.cfg cannot say: the wheel carries the compiled translations.

Each web/translations/<feature>/<lang>/LC_MESSAGES/messages.po becomes a messages.mo in the build,
so an installed Tawasul never writes into its own package folder. An editable install (make install)
compiles into the checkout instead, at run time (web.i18n.compile_catalogs).
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_catalogs(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:
            self.compile_catalogs()

    def compile_catalogs(self):
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        source = Path(self.get_package_dir("web"), "translations")
        target = Path(self.build_lib, "web", "translations")
        for po_path in sorted(source.glob("*/*/LC_MESSAGES/messages.po")):
            mo_path = (target / po_path.relative_to(source)).with_suffix(".mo")
            mo_path.parent.mkdir(parents=True, exist_ok=True)
            with open(po_path, "rb") as po_file:
                catalog = read_po(po_file)
            with open(mo_path, "wb") as mo_file:
                write_mo(mo_file, catalog)


setup(cmdclass={"build_py": build_py_with_catalogs})
